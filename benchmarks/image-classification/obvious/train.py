"""The obvious first fix for the image-classification task (hidden from agents).

env/train.py with the perceptron swapped for a standard small convolutional
network (two convolution and pooling stages, then two dense layers), trained
with Adam for longer. It trains a standard small CNN on the 16x16 colour images in
train_images.npy (labels in train_labels.npy), reports its accuracy on a
held-out part of the training images, then writes a prediction for every image
in test_images.npy to submission.csv (columns: id,label).

It uses a GPU when PyTorch sees one (torch.cuda.is_available()) and the CPU
otherwise. The run is seeded, so it repeats exactly on the same machine.
"""
import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

SEED = 0
EPOCHS = 15
BATCH = 64
LR = 1e-3
HERE = os.path.dirname(os.path.abspath(__file__))
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load():
    train_x = np.load(os.path.join(HERE, "train_images.npy"))  # (n, 16, 16, 3) uint8
    train_y = np.load(os.path.join(HERE, "train_labels.npy"))  # (n,) int64, 0..9
    test_x = np.load(os.path.join(HERE, "test_images.npy"))
    return train_x, train_y, test_x


def to_tensor(images):
    """uint8 (n, H, W, C) -> float (n, C, H, W), roughly zero mean, unit variance."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.25)


def make_model():
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def train(model, x, y):
    model.to(DEVICE).train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = x[idx].to(DEVICE), y[idx].to(DEVICE)
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{EPOCHS}: training loss {total / len(x):.4f}")
    return model


@torch.no_grad()
def predict(model, x):
    model.eval()
    return torch.cat([model(x[i:i + 512].to(DEVICE)).argmax(1).cpu() for i in range(0, len(x), 512)])


def main():
    torch.manual_seed(SEED)
    # One thread: these small models gain little from more, and the results
    # then do not depend on the machine's core count.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    train_x, train_y, test_x = load()
    x, y, test = to_tensor(train_x), torch.from_numpy(train_y), to_tensor(test_x)

    # Hold out 20% of the training images to estimate generalisation.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    n_val = len(x) // 5
    val, tr = perm[:n_val], perm[n_val:]
    model = train(make_model(), x[tr], y[tr])
    val_acc = (predict(model, x[val]) == y[val]).float().mean().item()
    print(f"validation accuracy: {val_acc:.4f}")

    # Retrain on every training image before predicting the test set.
    torch.manual_seed(SEED)
    model = train(make_model(), x, y)
    pred = predict(model, test).numpy()
    with open(os.path.join(HERE, "submission.csv"), "w") as f:
        f.write("id,label\n")
        f.writelines(f"{i},{int(p)}\n" for i, p in enumerate(pred))
    print(f"wrote submission.csv with {len(pred)} rows (device: {DEVICE})")


if __name__ == "__main__":
    main()
