"""The MLP archs the speed benchmarks train, and the exact GEMM work of one training step of
each (no flags, no TensorFlow: bench scripts and tests import it alike).

FLOPs: for each dense layer on m rows, the forward x W [m, k] @ [k, n], the weight gradient
x^T dy and, but for the first layer (whose input is the data), the input gradient dy W^T,
2 m k n FLOPs each; the encoder runs once per example, the decoder once per posterior sample.
A hierarchy trained with DReG takes some of its layers' gradients more than once (mlp_layers).
The count is the dots XLA compiles for the gradient of the loss (a test compares them).
"""

PIXELS = 784
PAPER = dict(hidden=[500], z=20, act='tanh', batch=100, samples=1)
ARCHS = {
    'paper': dict(PAPER, config='binarized_mnist_fc', hparams='', rough_rate=25000,
                  peer_args=['--hidden', '500', '--layers', '1', '--z', '20', '--act', 'tanh'],
                  variant=('fused_adam+compile', ['--fused_adam', '--compile'])),
    'wide': dict(hidden=[512, 512], z=32, act='relu', batch=1024, samples=1,
                 config='binarized_mnist_fc',
                 hparams='hidden_sizes=[512,512],z_size=32,activation=relu,batch_size=1024',
                 rough_rate=30000,
                 peer_args=['--hidden', '512', '--layers', '2', '--z', '32', '--act', 'relu'],
                 variant=('compile', ['--compile'])),
    'gated': dict(hidden=[300, 300], z=40, act='glu', batch=100, samples=20, dreg=True,
                  config='binarized_mnist_gated', hparams='', rough_rate=2500),
    'hvae': dict(hidden=[300, 300], z=40, act='glu', batch=100, samples=10, groups=2, dreg=True,
                 config='binarized_mnist_hvae', hparams='', rough_rate=2000),
    'binarize': dict(PAPER, config='mnist_fc', hparams='', rough_rate=25000),
}


def mlp_layers(arch):
  """The dense layers of the arch's VAE as (inputs, outputs, rows per example, passes), passes
  the number of (forward, weight-gradient, input-gradient) GEMMs of the layer in one step: the
  encoder (hidden layers, a ladder layer per group below the top, the mean and scale heads)
  once per example, the top-down groups and the decoder once per posterior sample; a glu layer
  computes 2x its width. With groups > 1 (tfvae.top_down.DenseLadder): the state starts as
  act(W z_top); each lower group has prior and posterior heads (hidden layer, then 2 z
  parameters), the posterior's feature term once per example, and a state update but for the
  last; the decoder sees every group's z. With DReG (dreg) and groups > 1, the generative pass
  runs the state layers again on the reweighted z's (a second weight and input gradient), and
  the frozen-weights pass runs them and the lower posteriors' per-sample layers once more for
  input gradients only; XLA computes each forward value once."""
  def width(h):
    return 2 * h if arch['act'] == 'glu' else h
  groups, z, samples = arch.get('groups', 1), arch['z'], arch['samples']
  hierarchical_dreg = arch.get('dreg', False) and groups > 1
  once, data = (1, 1, 1), (1, 1, 0)
  state_layer = (1, 2, 3) if hierarchical_dreg else once
  lower_posterior = (1, 1, 2) if hierarchical_dreg else once
  layers, inputs = [], PIXELS
  for h in arch['hidden']:
    layers.append((inputs, width(h), 1, once if layers else data))
    inputs = h
  state = inputs
  layers += [(state, width(state), 1, once)] * (groups - 1)
  layers += [(state, z, 1, once)] * 2
  if groups > 1:
    layers.append((z, width(state), samples, state_layer))
    for lower in range(1, groups):
      layers += [(state, width(state), samples, once), (state, 2 * z, samples, once),
                 (state, width(state), samples, lower_posterior),
                 (state, 2 * z, samples, lower_posterior), (state, width(state), 1, once)]
      if lower < groups - 1:
        layers += [(state, width(state), samples, state_layer),
                   (z, width(state), samples, state_layer)]
  inputs = z * groups
  for h in reversed(arch['hidden']):
    layers.append((inputs, width(h), samples, once))
    inputs = h
  layers.append((inputs, PIXELS, samples, once))
  return layers


def step_gemms(arch):
  """The GEMMs of one training step, [(m, k, n, transpose_a, transpose_b)] (module docstring)."""
  gemms = []
  for k, n, rows, (forward, weight_grad, input_grad) in mlp_layers(arch):
    m = arch['batch'] * rows
    gemms += ([(m, k, n, False, False)] * forward + [(k, m, n, True, False)] * weight_grad
              + [(m, n, k, False, True)] * input_grad)
  return gemms


def gemm_flops(gemms):
  return sum(2 * m * k * n for m, k, n, _, _ in gemms)
