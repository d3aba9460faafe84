import torch, json, sys
M = int(sys.argv[1]) if len(sys.argv) > 1 else 256
shapes = {"qkv": (12288, 4096), "o_proj": (4096, 4096), "gate_up": (22016, 4096), "down": (4096, 11008), "lm_head": (32000, 4096)}
out = {}
for name, (n, k) in shapes.items():
    x = torch.randn(M, k, device="cuda", dtype=torch.float16)
    ws = [torch.randn(n, k, device="cuda", dtype=torch.float16) for _ in range(4)]
    for _ in range(20):
        torch.nn.functional.linear(x, ws[0])
    torch.cuda.synchronize()
    ts = []
    for i in range(200):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); torch.nn.functional.linear(x, ws[i % 4]); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort(); med = ts[len(ts)//2]
    out[name] = {"m": M, "n": n, "k": k, "median_us": med * 1e3, "tflops": 2 * M * n * k / (med * 1e-3) / 1e12}
    print(f"torch F.linear M={M} {name:8s} N={n:6d} K={k:6d} {med*1e3:8.1f} us {out[name]['tflops']:7.1f} TFLOP/s")
json.dump(out, open(sys.argv[2] if len(sys.argv) > 2 else "/dev/null", "w"), indent=1)
