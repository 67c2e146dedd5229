"""Prototype: saved-for-backward bytes of LGA2d stacks, none / layer checkpoint / value-only."""
import sys, torch, resource, time
from torch.utils.checkpoint import checkpoint
from graphattn import LGA2d
from graphattn.lga import LGABase
from graphattn.lga_conv import LGAConv
from graphattn.grid_attention import grid_attention, grid_scores
from graphattn.compiled_grid_attention import compiled_grid_attention

MODE = {'m': 'none'}
orig_layers = LGABase.layers
def layers(self, h, graph, need):
    if MODE['m'] != 'layer':
        return orig_layers(self, h, graph, need)
    att = []
    for i, conv in enumerate(self.convs):
        norm = None if self.norms is None else self.norms[i]
        def body(h, conv=conv, norm=norm):
            z = h if norm is None else self._normed(norm, h)
            return conv(z, graph, return_attention_weights=need)
        r = checkpoint(body, h, use_reentrant=False)
        z = r[0] if need else r
        if need: att.append(r[1])
        h = h + z if self.residual else z
    return h, att
LGABase.layers = layers
orig_grid = LGAConv._grid
def _grid(self, x, graph, relu=False):
    if MODE['m'] != 'value':
        return orig_grid(self, x, graph, relu)
    b, height, width = x.size(0), graph.height, graph.width
    a = self.att_channels
    q = self._split(self.lin_att(x), a)
    as_map = lambda t: t.view(b, height, width, *t.shape[-2:])
    eye = torch.eye(len(graph.offsets), dtype=x.dtype)
    scores = grid_scores(self.score, as_map(q), None, self._phi(eye), graph.offsets, self.att, self.negative_slope)
    def tail(x, scores):
        v = as_map(self._split(self.lin_value(x), self.out_channels))
        if graph.compiled:
            return compiled_grid_attention(scores, v, graph.offsets, self.normalize, relu)
        return grid_attention(scores, v, graph.offsets, self.normalize)
    out, alpha = checkpoint(tail, x, scores, use_reentrant=False)
    return out.view(b, height * width, *out.shape[-2:]), alpha
LGAConv._grid = _grid

def saved_bytes(model, x):
    seen = {}
    def pack(t):
        if t.untyped_storage().data_ptr() not in seen:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return sum(seen.values()), out

if __name__ == '__main__':
    torch.set_num_threads(1)
    size = int(sys.argv[1]); plain = sys.argv[2] == 'plain'; path = sys.argv[3]
    kw = dict(residual=False, norm='none') if plain else {}
    for m in ('none', 'layer', 'value'):
        MODE['m'] = m
        torch.manual_seed(0)
        model = LGA2d(64, num_layers=4, path=path, **kw)
        x = torch.randn(2, 64, size, size, requires_grad=True)
        b, out = saved_bytes(model, x)
        print(f'{size} {"plain" if plain else "default"} {path} {m}: saved {b/2**20:.0f} MiB (one map = {x.numel()*4/2**20:.0f} MiB)', flush=True)
