# Starter code of a regression task laid out like MLAgentBench's house-price:
# it predicts the mean price for every house.
import csv

with open("submission.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["Id", "SalePrice"])
    for i in range(3):
        w.writerow([i, 200000])
