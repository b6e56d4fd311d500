# Starter code of a vectorization task, laid out like MLAgentBench's: it
# times its own forward pass (plain Python loops, to be vectorised) and
# appends the seconds to submission.csv.
import csv
import time


def forward(image, kernel):
    out = []
    for i in range(len(image) - 2):
        row = []
        for j in range(len(image[0]) - 2):
            s = 0.0
            for a in range(3):
                for b in range(3):
                    s += image[i + a][j + b] * kernel[a][b]
            row.append(s)
        out.append(row)
    return out


if __name__ == "__main__":
    image = [[(i * 31 + j * 17) % 7 / 7 for j in range(64)] for i in range(64)]
    kernel = [[1, 0, -1], [2, 0, -2], [1, 0, -1]]
    start = time.time()
    forward(image, kernel)
    seconds = time.time() - start
    print(f"Time taken for execution: {seconds} s")
    with open("submission.csv", "a+", newline="") as f:
        csv.writer(f, delimiter=";").writerow([seconds])
