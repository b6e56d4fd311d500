"""Prepare the text-classification task (hidden from agents).

Generates a corpus of short product reviews in an invented language from a
secret seed and writes, relative to the working directory (scripts/):
  ../env/train.csv   id,text,label for the labelled reviews (agent-visible)
  ../env/test.csv    id,text for the reviews to classify (agent-visible)
  answers.csv        id,label for the test reviews (hidden)

Nothing here comes from the system: every word is drawn at random from
syllables, so the labels cannot be recovered by looking the text up anywhere
in the sandbox. Only Python's own `random` module is used, whose streams are
stable across Python 3 versions, so the files are byte-identical everywhere.

The label is 2 * (product category) + (verdict), six classes. The category
shows in the nouns, which follow a long-tailed frequency distribution over
stems and take inflections, so many forms are rare in training (sub-word
features generalise, word identities do not). The verdict is what makes the
task hard, as in real reviews:
  - an adjective's polarity is a property of its stem;
  - opinions are often negated, with the negator up to four words before the
    adjective, which reverses them (bag-of-words models cannot tell "not good"
    from "good");
  - reviewers compare with a product they owned before, and those opinions,
    marked by a possessive such as "my old ...", usually point the other way;
  - some opinions disagree with the review's overall verdict, so the task is
    not perfectly separable.
"""
import csv
import os
import random

SEED = 7_391_204_118
N_TRAIN = 6000
N_TEST = 3000
N_TOPICS = 3
# How opinions are expressed (probabilities), see Generator.review.
P_AGREE = 0.9             # an opinion agrees with the review's verdict
P_NEGATED = 0.3           # an opinion is negated
P_COMPARE = 0.4           # the review compares with a product owned before
P_COMPARE_AGAINST = 0.75  # that comparison opposes the verdict
N_ADJ = 40                # adjective stems per polarity
NEG_SPOTS = [2, 6, 2]     # where a negator goes, see Generator.opinion
NEG_WEIGHTS = [10, 3, 1, 1]  # how often each negator is used
ADJ_ZIPF = 1.1            # exponent of the adjective stems' frequencies

ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
          "sh", "ch", "th", "br", "kr", "st", "pl", "gr", "tr", "sk"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ei", "ia", "oa"]
CODAS = ["", "", "", "n", "r", "l", "s", "m", "k", "t"]


class Lexicon:
    """The invented language: disjoint word classes drawn from syllables."""

    def __init__(self, rng):
        self.rng = rng
        self.used = set()
        w = self.words
        self.det = w(4, 1, 1)
        self.poss_mine = w(3, 1, 1)     # "my", "this", ...
        self.poss_other = w(4, 1, 2)    # "my old", "my friend's", ...
        self.copula = w(4, 1, 2)
        self.negator = w(4, 1, 2)
        self.intens = w(10, 2, 2)
        self.prep = w(8, 1, 2)
        self.conj = w(3, 1, 1)
        self.pron = w(6, 1, 1)
        self.adv = w(30, 2, 3)
        self.noun_suffix = ["", "en", "is", "ok", "ar"]
        self.adj_suffix = ["", "il", "esh", "ondo"]
        self.filler_noun = w(900, 2, 3)
        self.verb = w(500, 2, 3)
        self.topic_noun = [w(160, 2, 3) for _ in range(N_TOPICS)]
        self.adj = {+1: w(N_ADJ, 2, 3), -1: w(N_ADJ, 2, 3), 0: w(300, 2, 3)}

    def word(self, lo, hi):
        while True:
            n = self.rng.randint(lo, hi)
            s = "".join(self.rng.choice(ONSETS) + self.rng.choice(VOWELS) for _ in range(n))
            s += self.rng.choice(CODAS)
            if s not in self.used and len(s) >= 2:
                self.used.add(s)
                return s

    def words(self, n, lo, hi):
        return [self.word(lo, hi) for _ in range(n)]


def zipf_weights(n, a):
    return [1.0 / (k + 1) ** a for k in range(n)]


class Generator:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.lex = Lexicon(self.rng)
        lex = self.lex
        self.w_filler = zipf_weights(len(lex.filler_noun), 1.0)
        self.w_verb = zipf_weights(len(lex.verb), 1.0)
        self.w_topic = zipf_weights(len(lex.topic_noun[0]), 1.05)
        self.w_adj = zipf_weights(len(lex.adj[1]), ADJ_ZIPF)
        self.w_adj0 = zipf_weights(len(lex.adj[0]), 1.0)

    def pick(self, seq, weights=None):
        if weights is None:
            return self.rng.choice(seq)
        return self.rng.choices(seq, weights)[0]

    def noun(self, topic):
        lex = self.lex
        if topic is None:
            stem = self.pick(lex.filler_noun, self.w_filler)
        else:
            stem = self.pick(lex.topic_noun[topic], self.w_topic)
        return stem + self.pick(lex.noun_suffix, [5, 2, 2, 1, 1])

    def adjective(self, polarity):
        lex = self.lex
        weights = self.w_adj0 if polarity == 0 else self.w_adj
        return self.pick(lex.adj[polarity], weights) + self.pick(lex.adj_suffix, [5, 2, 2, 1])

    def filler_clause(self):
        lex, r = self.lex, self.rng
        toks = [self.pick(lex.pron), self.pick(lex.verb, self.w_verb)]
        for _ in range(r.randint(0, 2)):
            toks += [self.pick(lex.prep), self.pick(lex.det), self.noun(None)]
        if r.random() < 0.15:  # negators also occur where they reverse nothing
            toks.insert(1, self.pick(lex.negator, NEG_WEIGHTS))
        return toks

    def opinion(self, subject, polarity, negated):
        """A clause whose opinion of `subject` has the given polarity."""
        lex, r = self.lex, self.rng
        stem_pol = -polarity if negated else polarity
        adj = [self.adjective(stem_pol)]
        if r.random() < 0.35:
            adj.insert(0, self.pick(lex.intens))
        pre = subject + [self.pick(lex.copula)]
        if negated:
            # negator before the copula, before the adjective phrase, or in
            # front of an adverb: one to four words from the adjective
            spot = r.choices([0, 1, 2], NEG_SPOTS)[0]
            if spot == 0:
                pre.insert(len(pre) - 1, self.pick(lex.negator, NEG_WEIGHTS))
                if r.random() < 0.5:
                    pre.append(self.pick(lex.adv))
            elif spot == 1:
                pre.append(self.pick(lex.negator, NEG_WEIGHTS))
            else:
                pre += [self.pick(lex.negator, NEG_WEIGHTS), self.pick(lex.adv)]
        elif r.random() < 0.3:
            pre.append(self.pick(lex.adv))
        toks = pre + adj
        if r.random() < 0.3:
            toks += [self.pick(lex.prep), self.pick(lex.det), self.noun(None)]
        return toks

    def review(self, topic, verdict):
        lex, r = self.lex, self.rng
        clauses = []
        for _ in range(r.choices([1, 2, 3, 4], [3, 4, 3, 2])[0]):
            pol = verdict if r.random() < P_AGREE else -verdict
            subject = [self.pick(lex.poss_mine + lex.det), self.noun(topic)]
            clauses.append(self.opinion(subject, pol, r.random() < P_NEGATED))
        if r.random() < P_COMPARE:  # a comparison with a product owned before
            other = topic if r.random() < 0.6 else r.randrange(N_TOPICS)
            pol = -verdict if r.random() < P_COMPARE_AGAINST else verdict
            subject = [self.pick(lex.poss_other), self.noun(other)]
            clauses.append(self.opinion(subject, pol, r.random() < P_NEGATED))
        for _ in range(r.randint(0, 2)):  # neutral descriptions
            subject = [self.pick(lex.det), self.noun(topic if r.random() < 0.5 else None)]
            clauses.append(subject + [self.pick(lex.copula), self.adjective(0)])
        for _ in range(r.randint(1, 4)):
            clauses.append(self.filler_clause())
        r.shuffle(clauses)
        sentences = []
        for c in clauses:
            if sentences and r.random() < 0.25:
                sentences[-1] += [self.pick(lex.conj)] + c
            else:
                sentences.append(c)
        return " . ".join(" ".join(s) for s in sentences) + " ."

    def dataset(self, n):
        rows = []
        for _ in range(n):
            topic = self.rng.randrange(N_TOPICS)
            verdict = self.rng.choice([-1, 1])
            label = 2 * topic + (1 if verdict > 0 else 0)
            rows.append((self.review(topic, verdict), label))
        return rows


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def main():
    gen = Generator(SEED)
    train = gen.dataset(N_TRAIN)
    test = gen.dataset(N_TEST)
    env = os.path.join("..", "env")
    os.makedirs(env, exist_ok=True)
    write_csv(os.path.join(env, "train.csv"), ["id", "text", "label"],
              [(i, text, label) for i, (text, label) in enumerate(train)])
    # Test ids continue after the training ids so the two never collide.
    ids = range(N_TRAIN, N_TRAIN + N_TEST)
    write_csv(os.path.join(env, "test.csv"), ["id", "text"],
              [(i, text) for i, (text, _) in zip(ids, test)])
    write_csv("answers.csv", ["id", "label"],
              [(i, label) for i, (_, label) in zip(ids, test)])
    print(f"wrote {N_TRAIN} training and {N_TEST} test reviews")


if __name__ == "__main__":
    main()
