#!/usr/bin/env python3
"""Run StableHLO text with XLA's CPU compiler through jaxlib (verification tool for evometa's xla device).

Modes:
  xla_runner.py --check              print {"ok": true, "jax": ..., "devices": N} (exit 1 with a reason otherwise)
  xla_runner.py --serve [--sync-fifo PATH]
                                     read one JSON request per line on stdin, answer one JSON line on stdout;
                                     with --sync-fifo, also read requests from that FIFO (for callers that
                                     must block) and write each answer to the FIFO named by its "reply"
  xla_runner.py REQUEST.json         run one request, print the answer

A request: {"id": any, "mlir": "path/to/program.mlir", "replicas": R,
            "inputs": [[{"path": "...", "dtype": "f32", "shape": [..]}, ...] per replica],
            "outdir": "dir for output files"}
The answer: {"id": ..., "ok": true, "outputs": [[{"path", "dtype", "shape"}, ...] per replica]}
            or {"id": ..., "ok": false, "error": "message"}.
Arrays are raw little-endian files. Replicas need R host devices: run with
XLA_FLAGS=--xla_force_host_platform_device_count=R (or larger); --serve sets 8 when XLA_FLAGS is unset.
"""
import hashlib
import json
import os
import sys
import threading

if "XLA_FLAGS" not in os.environ:
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

DTYPES = {"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "ui32": "uint32", "ui64": "uint64", "i1": "bool"}
NAMES = {v: k for k, v in DTYPES.items()}


def _load():
    import numpy as np
    import jax
    jax.config.update("jax_enable_x64", True)
    from jax._src.lib import xla_client as xc
    from jax._src import xla_bridge as xb
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    return np, jax, xc, xb, Mesh, NamedSharding, PartitionSpec


class Runner:
    def __init__(self):
        (self.np, self.jax, self.xc, self.xb, self.Mesh, self.NamedSharding, self.P) = _load()
        self.backend = self.xb.get_backend("cpu")
        self.cache = {}

    def compile(self, text, replicas):
        key = (hashlib.sha256(text.encode()).hexdigest(), replicas)
        exe = self.cache.get(key)
        if exe is not None:
            return exe
        devs = self.backend.local_devices()
        if len(devs) < replicas:
            raise RuntimeError(f"{replicas} replicas need {replicas} host devices, have {len(devs)} "
                               f"(set XLA_FLAGS=--xla_force_host_platform_device_count={replicas})")
        opts = self.xc.CompileOptions()
        opts.num_replicas = replicas
        opts.num_partitions = 1
        opts.device_assignment = self.xc.DeviceAssignment.create(self.np.arange(replicas).reshape(replicas, 1))
        exe = self.backend.compile_and_load(text, self.xc.DeviceList(tuple(devs[:replicas])), opts)
        self.cache[key] = exe
        if len(self.cache) > 64:
            self.cache.pop(next(iter(self.cache)))
        return exe

    def run(self, req):
        np, jax = self.np, self.jax
        with open(req["mlir"], encoding="utf-8") as f:
            text = f.read()
        replicas = int(req.get("replicas", 1))
        exe = self.compile(text, replicas)
        devs = self.backend.local_devices()[:replicas]
        per_rep = req["inputs"]
        if len(per_rep) != replicas:
            raise ValueError(f"request has inputs for {len(per_rep)} replicas, program has {replicas}")
        nargs = len(per_rep[0])
        mesh = self.Mesh(np.array(devs), ("r",))
        sharding = self.NamedSharding(mesh, self.P())
        args = []
        for a in range(nargs):
            shards = []
            for r in range(replicas):
                spec = per_rep[r][a]
                dt = np.dtype(DTYPES[spec["dtype"]])
                host = np.fromfile(spec["path"], dtype=dt).reshape(spec["shape"])
                shards.append(jax.device_put(host, devs[r]))
            # Replicas may hold different values: the array is assembled shard by shard, never compared.
            args.append(jax.make_array_from_single_device_arrays(tuple(per_rep[0][a]["shape"]), sharding, shards))
        res = exe.execute_sharded(args).disassemble_into_single_device_arrays()
        os.makedirs(req["outdir"], exist_ok=True)
        outs = [[] for _ in range(replicas)]
        for k, per_out in enumerate(res):
            for r, arr in enumerate(per_out):
                host = np.asarray(arr)
                path = os.path.join(req["outdir"], f"r{r}_o{k}.bin")
                np.ascontiguousarray(host).tofile(path)
                outs[r].append({"path": path, "dtype": NAMES[str(host.dtype)], "shape": list(host.shape)})
        return outs


LOCK = threading.Lock()


def answer(runner, req):
    try:
        with LOCK:
            return {"id": req.get("id"), "ok": True, "outputs": runner.run(req)}
    except Exception as e:  # every failure becomes an answer, never a dead server
        return {"id": req.get("id"), "ok": False, "error": f"{type(e).__name__}: {e}"}


def sync_loop(runner, fifo):
    """Requests from a FIFO (one writer at a time); each answer goes to the FIFO named by its "reply"."""
    while True:
        with open(fifo, encoding="utf-8") as f:
            data = f.read()
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                continue
            out = answer(runner, req)
            with open(req["reply"], "w", encoding="utf-8") as o:
                o.write(json.dumps(out) + "\n")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "--check":
        try:
            np, jax, *_ = _load()
            import jaxlib
            print(json.dumps({"ok": True, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                              "devices": len(jax.devices("cpu"))}))
            return 0
        except Exception as e:
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
            return 1
    runner = Runner()
    if argv[1] == "--serve":
        if len(argv) >= 4 and argv[2] == "--sync-fifo":
            threading.Thread(target=sync_loop, args=(runner, argv[3]), daemon=True).start()
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                print(json.dumps({"id": None, "ok": False, "error": f"bad request line: {e}"}), flush=True)
                continue
            print(json.dumps(answer(runner, req)), flush=True)
        return 0
    with open(argv[1], encoding="utf-8") as f:
        req = json.load(f)
    out = answer(runner, req)
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
