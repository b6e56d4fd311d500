"""Reference solution for the text classification task (hidden from agents).

Drop-in replacement for env/train.py. Bag-of-words models fail on the
verdict half of the label because the same adjective counts for the product
in "it is good", against it in "it is not good", and says nothing about it in
"my old one was good". The reviews are in an undisclosed language, so which
words negate or change the subject has to be learnt from the data:

1. Factorise the label: category = label // 2 and verdict = label % 2 are
   learnt by separate models, so each verdict cue is learnt from every review
   instead of once per category.
2. Learn a polarity lexicon: a logistic regression of the verdict on word
   presence; the words with the largest weights are the polar words.
3. Find scope words: a word that, placed up to four words before a polar word
   in the same sentence, makes that polar word disagree with the verdict more
   often than agree reverses it (a negator, or "my old ..."). Steps 2-3 are
   repeated once on the marked text of step 4, which cleans the lexicon.
4. Mark scope: from a scope word to the end of the sentence, every word gets
   an "F_" prefix when an odd number of scope words precede it, so "not good"
   and "good" become different features and a double reversal cancels.
5. Verdict: TF-IDF of marked word uni- and bigrams, logistic regression.
   Category: TF-IDF of words and of character 3-5-grams (rare inflected
   forms share their stem's n-grams), logistic regression.
"""
import os

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline, make_union

SEED = 0
HERE = os.path.dirname(os.path.abspath(__file__))
WINDOW = 4          # how far before a polar word a scope word may stand
POLAR_SHARE = 0.1   # share of the vocabulary taken as polar words
MIN_PAIRS = 30      # evidence a candidate scope word needs
REVERSAL = 0.2      # net share of polar words a scope word must reverse
FLIP = "F_"


def mark(tokens, scope_words):
    """Prefix the words in the scope of an odd number of scope words.

    A scope word reaches the next WINDOW words of its sentence; the scope
    words themselves are dropped."""
    out, ends = [], []
    for i, w in enumerate(tokens):
        if w == ".":
            ends = []
            out.append(w)
            continue
        ends = [e for e in ends if e >= i]
        if w in scope_words:
            ends.append(i + WINDOW)
        else:
            out.append(FLIP + w if len(ends) % 2 else w)
    return out


def polar_lexicon(docs, verdict):
    """Word -> +1/-1 for the words that most predict the verdict."""
    cv = CountVectorizer(analyzer=lambda toks: toks, binary=True, min_df=3)
    X = cv.fit_transform(docs)
    coef = LogisticRegression(C=1.0, max_iter=2000).fit(X, verdict).coef_[0]
    cut = np.quantile(np.abs(coef), 1 - POLAR_SHARE)
    lexicon = {}
    for w, c in zip(cv.get_feature_names_out(), coef):
        if abs(c) >= cut:
            # a marked word's polarity is that of the bare word, reversed
            bare, sign = (w[len(FLIP):], -1) if w.startswith(FLIP) else (w, 1)
            lexicon.setdefault(bare, []).append(sign * np.sign(c))
    return {w: np.sign(sum(s)) for w, s in lexicon.items() if sum(s) != 0}


def scope_words(token_docs, verdict, known=frozenset()):
    """Words before which polar words mostly disagree with the verdict.

    Each (candidate, polar word) pair in a sentence, the candidate at most
    WINDOW words before, scores +1 when the polar word agrees with the
    review's verdict and -1 when it disagrees. The polar word's sign is first
    reversed by the known scope words before it, other than the candidate,
    so that a second pass sees each candidate's own effect more cleanly."""
    signs = np.where(np.asarray(verdict) == 1, 1.0, -1.0)
    docs = [mark(t, known) for t in token_docs] if known else token_docs
    lexicon = polar_lexicon(docs, verdict)
    agree, count = {}, {}
    for toks, s in zip(token_docs, signs):
        start = 0  # first word of the current sentence
        for j, w in enumerate(toks):
            if w == ".":
                start = j + 1
                continue
            if w not in lexicon or w in known:
                continue
            window = range(max(start, j - WINDOW), j)
            n_known = sum(toks[i] in known for i in window)
            for i in window:
                c = toks[i]
                pol = lexicon[w] * (-1) ** (n_known - (c in known))
                agree[c] = agree.get(c, 0.0) + pol * s
                count[c] = count.get(c, 0) + 1
    score = {w: agree[w] / n for w, n in count.items() if n >= MIN_PAIRS}
    return {w for w, v in score.items() if v < -REVERSAL}, score


def _identity(tokens):
    return tokens


class Model:
    def fit(self, texts, labels):
        tokens = [t.split() for t in texts]
        verdict = np.asarray(labels) % 2
        first, _ = scope_words(tokens, verdict)
        self.scopes, self.scores = scope_words(tokens, verdict, known=frozenset(first))
        self.verdict = make_pipeline(
            TfidfVectorizer(analyzer=_identity, sublinear_tf=True, min_df=2),
            LogisticRegression(C=3.0, max_iter=3000),
        ).fit([mark(t, self.scopes) for t in tokens], verdict)
        self.category = make_pipeline(
            make_union(
                TfidfVectorizer(sublinear_tf=True),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2),
            ),
            LogisticRegression(C=10.0, max_iter=3000),
        ).fit(texts, np.asarray(labels) // 2)
        return self

    def predict(self, texts):
        marked = [mark(t.split(), self.scopes) for t in texts]
        return 2 * self.category.predict(texts) + self.verdict.predict(marked)


def main():
    train = pd.read_csv(os.path.join(HERE, "train.csv"))
    test = pd.read_csv(os.path.join(HERE, "test.csv"))

    X_tr, X_val, y_tr, y_val = train_test_split(
        train["text"], train["label"], test_size=0.2, random_state=SEED, stratify=train["label"]
    )
    model = Model().fit(list(X_tr), y_tr)
    print(f"scope words: {sorted(model.scopes)}")
    print(f"validation accuracy: {accuracy_score(y_val, model.predict(list(X_val))):.4f}")

    model = Model().fit(list(train["text"]), train["label"])
    pred = model.predict(list(test["text"]))
    submission = pd.DataFrame({"id": test["id"], "label": pred.astype(int)})
    submission.to_csv(os.path.join(HERE, "submission.csv"), index=False)
    print(f"wrote submission.csv with {len(submission)} rows")


if __name__ == "__main__":
    main()
