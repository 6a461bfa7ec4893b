"""PyTorch CPU peer of bench/population.ts and bench/backprop.ts (optional: skipped when torch is absent).

A line server, so the benchmarks can interleave its timed repetitions with their own under one
protocol (warm-up, then rounds in which every implementation runs once; medians): it reads one
JSON command per line on stdin and answers one JSON line on stdout.

  {"cmd": "setup", "mode": "population" | "backprop", "formulation": ..., ...}  -> {"ok": true, "torch": version}
  {"cmd": "warmup"}   -> {"ok": true, "seconds": wall}       (untimed runs: primitives, compilation, caches)
  {"cmd": "run"}      -> {"wall": seconds, "cpu": process CPU seconds}   (one timed repetition)
  {"cmd": "quit"}

If torch cannot be imported, the first line is {"skipped": reason}.

Population mode: the work of evometa's population loop -- per member, noise of size D,
theta = mu + sigma * z, the ConvNet-4 forward with batch-mode BN on support + query, prototypes,
squared distances, cross-entropy -- for `members` members, in one formulation:
  loop-nchw, loop-cl:           one member at a time (F.conv2d with that member's weights),
                                contiguous (NCHW) or channels_last activations and weights;
  grouped<G>-nchw, grouped<G>-cl: G members at once as one grouped convolution (groups = G).
Backprop mode: one training step (forward, backward, Adam) of the same network on one episode, in
formulation nchw or cl (channels_last), eager or, with "compile": true, torch.compile'd.
torch.set_num_threads(threads) in every mode.
"""
import json
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the caller prints the skip message
    print(json.dumps({"skipped": f"torch not importable: {e}"}), flush=True)
    sys.exit(0)


def layout(c, blocks=4, cin=1):
    shapes = []
    for i in range(blocks):
        ci = cin if i == 0 else c
        shapes += [(c, ci, 3, 3), (c,), (c,), (c,)]
    return shapes


def split(theta, shapes):
    out, p = [], 0
    for s in shapes:
        n = 1
        for d in s:
            n *= d
        out.append(theta[..., p:p + n].reshape(*theta.shape[:-1], *s))
        p += n
    return out


def episode(way, shot, query, size, gen):
    x = (torch.rand(way * (shot + query), 1, size, size, generator=gen) < 0.8).float()
    return x, torch.arange(way).repeat(query), way, shot


def loss_from_embeddings(z, way, shot, ql):
    # z [..., N, E]; support rows r have label r % way, as in the TS benchmarks
    ns = way * shot
    zs, zq = z[..., :ns, :], z[..., ns:, :]
    protos = zs.reshape(*zs.shape[:-2], shot, way, zs.shape[-1]).mean(-3)
    d = ((zq.unsqueeze(-2) - protos.unsqueeze(-3)) ** 2).sum(-1)
    logp = F.log_softmax(-d, -1)
    return -logp.gather(-1, ql.expand(*logp.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)


def memory_format(cl):
    return torch.channels_last if cl else torch.contiguous_format


def forward_loop(x, params, cl, blocks=4):
    h = x
    for i in range(blocks):
        w, b, g, bt = params[4 * i:4 * i + 4]
        if cl:
            w = w.contiguous(memory_format=torch.channels_last)
        h = F.conv2d(h, w, b, padding=1)
        h = F.batch_norm(h, None, None, g, bt, training=True, eps=1e-5)
        h = F.max_pool2d(F.relu(h), 2)
    return h.flatten(1)


def forward_grouped(x, params, groups, cl, blocks=4):
    h = x.repeat(1, groups, 1, 1).contiguous(memory_format=memory_format(cl))
    for i in range(blocks):
        w, b, g, bt = params[4 * i:4 * i + 4]
        wg = w.reshape(-1, *w.shape[2:]).contiguous(memory_format=memory_format(cl))
        h = F.conv2d(h, wg, b.reshape(-1), padding=1, groups=groups)
        h = F.batch_norm(h, None, None, g.reshape(-1), bt.reshape(-1), training=True, eps=1e-5)
        h = F.max_pool2d(F.relu(h), 2)
    n = h.shape[0]
    return h.reshape(n, groups, -1).transpose(0, 1)  # [G, N, E]


class Population:
    def __init__(self, req):
        torch.set_num_threads(req["threads"])
        self.gen = torch.Generator().manual_seed(1)
        f = req["formulation"]
        kind, layout_name = f.split("-")
        if layout_name not in ("nchw", "cl"):
            raise ValueError(f"formulation {f}: layout must be nchw or cl")
        self.cl = layout_name == "cl"
        self.groups = 0 if kind == "loop" else int(kind[len("grouped"):])
        self.members = req["members"]
        if self.groups and self.members % self.groups:
            raise ValueError(f"formulation {f}: {self.members} members is not a multiple of {self.groups}")
        x, self.ql, self.way, self.shot = episode(req["way"], req["shot"], req["query"], req["imageSize"], self.gen)
        self.x = x.contiguous(memory_format=memory_format(self.cl))
        self.shapes = layout(req["channels"])
        self.d = sum(int(torch.tensor(s).prod()) for s in self.shapes)
        self.mu = torch.randn(self.d, generator=self.gen) * 0.05
        self.sigma = 0.01

    def evaluate(self, members):
        with torch.no_grad():
            if self.groups == 0:
                for _ in range(members):
                    theta = self.mu + self.sigma * torch.randn(self.d, generator=self.gen)
                    loss_from_embeddings(forward_loop(self.x, split(theta, self.shapes), self.cl), self.way, self.shot, self.ql)
            else:
                for _ in range(0, members, self.groups):
                    theta = self.mu + self.sigma * torch.randn(self.groups, self.d, generator=self.gen)
                    z = forward_grouped(self.x, split(theta, self.shapes), self.groups, self.cl)
                    loss_from_embeddings(z, self.way, self.shot, self.ql)

    def warmup(self):
        self.evaluate(max(self.groups, 1))

    def run(self):
        self.evaluate(self.members)


class Backprop:
    def __init__(self, req):
        torch.set_num_threads(req["threads"])
        gen = torch.Generator().manual_seed(1)
        f = req["formulation"]
        if f not in ("nchw", "cl"):
            raise ValueError(f"formulation {f}: must be nchw or cl")
        cl = f == "cl"
        x, self.ql, self.way, self.shot = episode(req["way"], req["shot"], req["query"], req["imageSize"], gen)
        self.x = x.contiguous(memory_format=memory_format(cl))
        self.params = []
        for s in layout(req["channels"]):
            p = torch.randn(*s, generator=gen) * 0.1
            if len(s) == 4:
                p = p.contiguous(memory_format=memory_format(cl))
            self.params.append(torch.nn.Parameter(p))
        self.opt = torch.optim.Adam(self.params, lr=1e-3)
        fwd = lambda x, params: loss_from_embeddings(forward_loop(x, params, cl), self.way, self.shot, self.ql)
        self.loss = torch.compile(fwd) if req.get("compile") else fwd

    def step(self):
        self.opt.zero_grad()
        self.loss(self.x, self.params).backward()
        self.opt.step()

    def warmup(self):
        for _ in range(2):
            self.step()

    def run(self):
        self.step()


def main():
    impl = None
    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "quit":
            break
        try:
            if cmd == "setup":
                impl = Population(req) if req["mode"] == "population" else Backprop(req)
                out = {"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
            elif cmd == "warmup":
                t0 = time.perf_counter()
                impl.warmup()
                out = {"ok": True, "seconds": time.perf_counter() - t0}
            elif cmd == "run":
                t0, c0 = time.perf_counter(), time.process_time()
                impl.run()
                out = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
            else:
                out = {"error": f"unknown command {cmd}"}
        except Exception as e:  # reported to the caller, which stops with the message
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
