import sys, os, hashlib, time
import torch, torch.nn.functional as F
torch.set_num_threads(1)
sys.path.insert(0, os.path.join(os.getcwd(), 'examples'))
STEPS = int(os.environ.get('FP_STEPS', 300)); SEED = int(os.environ.get('FP_SEED', 0))
import dehaze
from models import DehazeNet
def h(ts):
    m = hashlib.sha256()
    for t in ts: m.update(t.detach().contiguous().numpy().tobytes())
    return m.hexdigest()[:12]
t0 = time.time()
train_data, test = dehaze.make_data(2000, 200, progress=False)
print('data', h(train_data[:2]), h(test[:2]), f'{time.time()-t0:.1f}s')
torch.manual_seed(SEED)
model = DehazeNet('none')
print('init', h(model.state_dict().values()))
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=STEPS)
g = torch.Generator().manual_seed(SEED)
model.train()
for _ in range(STEPS):
    idx = torch.randint(train_data[0].size(0), (16,), generator=g)
    loss = F.l1_loss(model(train_data[0][idx]), train_data[1][idx])
    optimizer.zero_grad(set_to_none=True); loss.backward(); optimizer.step(); schedule.step()
print('final', h(model.state_dict().values()))
print('psnr', repr(dehaze.evaluate(model, test)['psnr']), f'{time.time()-t0:.1f}s')
