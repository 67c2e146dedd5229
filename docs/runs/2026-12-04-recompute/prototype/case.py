import sys, time, resource, statistics, torch
sys.path.insert(0, '/tmp/rc'); sys.path.insert(0, 'benchmarks')
import proto
from common import current_rss
torch.set_num_threads(1)
size, stack, path, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
proto.MODE['m'] = mode
torch.manual_seed(0)
if path == 'unfold':
    import layers
    model = layers.UnfoldLGA(64, 4)
else:
    kw = dict(residual=False, norm='none') if stack == 'plain' else {}
    model = proto.LGA2d(64, num_layers=4, path=path, **kw)
x = torch.randn(2, 64, size, size, requires_grad=True)
before = current_rss()
ts = []
for i in range(3):
    t = time.perf_counter(); model(x).sum().backward(); ts.append(time.perf_counter() - t)
    x.grad = None; model.zero_grad(set_to_none=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(f'{size} {stack} {path} {mode}: {1000*statistics.median(ts[1:]):.0f} ms (passes {[round(1000*t) for t in ts]}), peak {peak/2**20:.0f} MiB', flush=True)
