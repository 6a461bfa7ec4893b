"""PyTorch CPU peer for bench/population.ts and bench/backprop.ts (optional: skipped when torch is absent).

Population mode: the same work as evometa's population loop -- per member, noise of size D,
theta = mu + sigma * z, the ConvNet-4 forward with batch-mode BN on support+query, prototypes,
squared distances, cross-entropy -- in two formulations, and reports each:
  loop:    one member at a time (F.conv2d with that member's weights);
  grouped: G members at once as a grouped convolution (groups=G) over a chunk.
Backprop mode: one training step (forward, backward, Adam) of the same network.

Reads one JSON request from argv[1]; prints one JSON object.
"""
import json
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the caller prints the skip message
    print(json.dumps({"skipped": f"torch not importable: {e}"}))
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
    # z [..., N, E]; support rows are class-major blocks of `shot` (labels i % way, as in the TS bench: rows r -> r % way)
    ns = way * shot
    zs, zq = z[..., :ns, :], z[..., ns:, :]
    protos = zs.reshape(*zs.shape[:-2], shot, way, zs.shape[-1]).mean(-3)
    d = ((zq.unsqueeze(-2) - protos.unsqueeze(-3)) ** 2).sum(-1)
    logp = F.log_softmax(-d, -1)
    return -logp.gather(-1, ql.expand(*logp.shape[:-1]).unsqueeze(-1)).squeeze(-1).mean(-1)


def forward_loop(x, params, blocks=4):
    h = x
    for i in range(blocks):
        w, b, g, bt = params[4 * i:4 * i + 4]
        h = F.conv2d(h, w, b, padding=1)
        h = F.batch_norm(h, None, None, g, bt, training=True, eps=1e-5)
        h = F.max_pool2d(F.relu(h), 2)
    return h.flatten(1)


def forward_grouped(x, params, groups, blocks=4):
    h = x.repeat(1, groups, 1, 1)
    for i in range(blocks):
        w, b, g, bt = params[4 * i:4 * i + 4]
        h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), padding=1, groups=groups)
        h = F.batch_norm(h, None, None, g.reshape(-1), bt.reshape(-1), training=True, eps=1e-5)
        h = F.max_pool2d(F.relu(h), 2)
    n = h.shape[0]
    return h.reshape(n, groups, -1).transpose(0, 1)  # [G, N, E]


def population(req):
    torch.set_num_threads(req["threads"])
    gen = torch.Generator().manual_seed(1)
    c, members = req["channels"], req["members"]
    x, ql, way, shot = episode(req["way"], req["shot"], req["query"], req["imageSize"], gen)
    shapes = layout(c)
    d = sum(int(torch.tensor(s).prod()) for s in shapes)
    mu = torch.randn(d, generator=gen) * 0.05
    sigma = 0.01
    results, cpu = {}, {}  # wall seconds and process CPU seconds per formulation
    with torch.no_grad():
        def run_loop():
            for m in range(members):
                theta = mu + sigma * torch.randn(d, generator=gen)
                loss_from_embeddings(forward_loop(x, split(theta, shapes)), way, shot, ql)
        loss_from_embeddings(forward_loop(x, split(mu, shapes)), way, shot, ql)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time(); run_loop()
        results["loop"] = time.perf_counter() - t0; cpu["loop"] = time.process_time() - c0
        for g in req.get("groups", [8, 16, 32]):
            if g > members:
                continue
            def run_grouped():
                for m0 in range(0, members, g):
                    theta = mu + sigma * torch.randn(g, d, generator=gen)
                    loss_from_embeddings(forward_grouped(x, split(theta, shapes), g), way, shot, ql)
            run_grouped()
            t0, c0 = time.perf_counter(), time.process_time(); run_grouped()
            results[f"grouped{g}"] = time.perf_counter() - t0; cpu[f"grouped{g}"] = time.process_time() - c0
    return {"torch": torch.__version__, "threads": req["threads"], "members": members, "seconds": results, "cpuSeconds": cpu}


def backprop(req):
    torch.set_num_threads(req["threads"])
    gen = torch.Generator().manual_seed(1)
    c = req["channels"]
    x, ql, way, shot = episode(req["way"], req["shot"], req["query"], req["imageSize"], gen)
    params = [torch.nn.Parameter(torch.randn(*s, generator=gen) * 0.1) for s in layout(c)]
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        opt.zero_grad()
        loss = loss_from_embeddings(forward_loop(x, params), way, shot, ql)
        loss.backward()
        opt.step()

    step()
    times, cpus = [], []
    for _ in range(req["steps"]):
        t0, c0 = time.perf_counter(), time.process_time(); step()
        times.append(time.perf_counter() - t0); cpus.append(time.process_time() - c0)
    return {"torch": torch.__version__, "threads": req["threads"], "stepSeconds": min(times), "stepCpuSeconds": min(cpus)}


if __name__ == "__main__":
    r = json.loads(sys.argv[1])
    print(json.dumps(population(r) if r["mode"] == "population" else backprop(r)))
