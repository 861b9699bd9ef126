"""Train a small CNN on scikit-learn's 8x8 digits with NumPy and fastconv alone.

    python examples/train_digits.py [--epochs 8] [--limit N] [--dtype float32] [--seed 0]

The network: conv 1->8 3x3 (padding 1), ReLU, conv 8->16 3x3 stride 2 (padding 1), ReLU, a linear
layer 256->10 and softmax cross-entropy, trained with Adam on mini-batches. The forward and the
backward pass are written out: ``fastconv.conv2d`` forward, ``fastconv.grad.conv2d_input`` and
``conv2d_weight`` backward. Prints the loss and the training accuracy per epoch, with a progress
bar over the batches. Needs scikit-learn (``pip install fastconv[examples]``) and tqdm.
"""

import argparse
import time

import numpy as np

import fastconv

BATCH = 64
CONV1 = dict(padding=1)
CONV2 = dict(stride=2, padding=1)


def load(limit):
    """Images (N, 1, 8, 8) scaled to [0, 1] and labels, the first ``limit`` of them."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0)[:, None]
    return images[:limit], digits.target[:limit]


class Network:
    """Parameters, their Adam moments, and the forward and backward passes."""

    def __init__(self, rng, dtype):
        def he(shape, fan_in):
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)

        self.params = {
            "w1": he((8, 1, 3, 3), 9), "b1": np.zeros(8, dtype),
            "w2": he((16, 8, 3, 3), 72), "b2": np.zeros(16, dtype),
            "w3": he((256, 10), 256), "b3": np.zeros(10, dtype),
        }
        self.moments = {name: (np.zeros_like(p), np.zeros_like(p))
                        for name, p in self.params.items()}
        self.steps = 0

    def forward(self, x):
        p = self.params
        y1 = fastconv.conv2d(x, p["w1"], p["b1"], **CONV1)
        a1 = np.maximum(y1, 0)
        y2 = fastconv.conv2d(a1, p["w2"], p["b2"], **CONV2)
        a2 = np.maximum(y2, 0).reshape(len(x), -1)
        logits = a2 @ p["w3"] + p["b3"]
        return logits, (x, y1, a1, y2, a2)

    def backward(self, logits, labels, cache):
        """Loss and gradients of softmax cross-entropy (mean over the batch)."""
        p = self.params
        x, y1, a1, y2, a2 = cache
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(labels))
        loss = -log_probs[rows, labels].mean()
        d_logits = np.exp(log_probs)
        d_logits[rows, labels] -= 1
        d_logits /= len(labels)
        grads = {"w3": a2.T @ d_logits, "b3": d_logits.sum(axis=0)}
        d_y2 = (d_logits @ p["w3"].T).reshape(y2.shape) * (y2 > 0)
        grads["w2"] = fastconv.grad.conv2d_weight(a1, p["w2"].shape, d_y2, **CONV2)
        grads["b2"] = d_y2.sum(axis=(0, 2, 3))
        d_y1 = fastconv.grad.conv2d_input(a1.shape, p["w2"], d_y2, **CONV2) * (y1 > 0)
        grads["w1"] = fastconv.grad.conv2d_weight(x, p["w1"].shape, d_y1, **CONV1)
        grads["b1"] = d_y1.sum(axis=(0, 2, 3))
        return loss, grads

    def adam(self, grads, rate=0.01, beta1=0.9, beta2=0.999, eps=1e-8):
        self.steps += 1
        for name, grad in grads.items():
            m, v = self.moments[name]
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            m_hat = m / (1 - beta1**self.steps)
            v_hat = v / (1 - beta2**self.steps)
            self.params[name] -= (rate * m_hat / (np.sqrt(v_hat) + eps)).astype(grad.dtype)


def run_epoch(network, images, labels, rng, progress=True):
    """One pass over shuffled mini-batches; returns the mean loss and the training accuracy."""
    order = rng.permutation(len(images))
    batches = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, leave=False, unit="batch")
    total_loss = correct = 0.0
    for batch in batches:
        logits, cache = network.forward(images[batch])
        loss, grads = network.backward(logits, labels[batch], cache)
        network.adam(grads)
        total_loss += loss * len(batch)
        correct += np.sum(logits.argmax(axis=1) == labels[batch])
    return total_loss / len(images), correct / len(images)


def torch_epoch(images, labels, dtype):
    """The same network, batches and optimiser in PyTorch (for bench/grad.py): a function that
    runs one epoch."""
    import torch

    torch_dtype = getattr(torch, np.dtype(dtype).name)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(256, 10)).to(torch_dtype)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    x_all, y_all = torch.from_numpy(images.astype(dtype)), torch.from_numpy(labels)

    def epoch():
        order = torch.from_numpy(np.random.default_rng(1).permutation(len(images)))
        for i in range(0, len(order), BATCH):
            batch = order[i:i + BATCH]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_all[batch]), y_all[batch])
            loss.backward()
            optimiser.step()

    return epoch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    images, labels = load(args.limit)
    images = images.astype(args.dtype)
    rng = np.random.default_rng(args.seed)
    network = Network(rng, args.dtype)
    history = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        loss, accuracy = run_epoch(network, images, labels, rng, not args.no_progress)
        history.append((loss, accuracy))
        print(f"epoch {epoch:2d}  loss {loss:.4f}  accuracy {accuracy:.1%}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    return history


if __name__ == "__main__":
    main()
