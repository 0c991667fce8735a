#!/usr/bin/env python3
"""How well do online features predict that a Mooncake conversation comes back?

Analysis behind docs/eviction.md (the second and third looks): rebuilds conversations from the
hash chains (a prompt continues the latest earlier prompt whose blocks, all but its last, are a
prefix of it); reports facts about them (P(another turn) by turn and by output length, the
inter-turn gaps, how continuations relate to their parent's prompt), then ROC AUC of single
features and of a logistic regression for "this prompt gets a follow-up turn", and P(next turn
within T seconds) by output length and turn.

Usage (numpy only): python3 packages/eviction/scripts/followup-signals.py [TRACE.jsonl]

The trace defaults to the Mooncake conversation trace in the shared data folder
($KVMGR_SHARED/traces, else ../shared/traces beside the repository, as scripts/shared-data.ts
resolves it); without it the script says so and exits 0.
"""
import json
import os
import sys

import numpy as np

if len(sys.argv) > 1:
    path = sys.argv[1]
else:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    shared = os.path.abspath(os.environ.get('KVMGR_SHARED') or os.path.join(repo, '..', 'shared'))
    path = os.path.join(shared, 'traces', 'mooncake_fast25_conversation_trace.jsonl')
    if not os.path.exists(path):
        print(f'followup-signals: skipped: no trace at {path} (set KVMGR_SHARED to the folder holding traces/, or pass a trace path)', file=sys.stderr)
        sys.exit(0)
rows = [json.loads(line) for line in open(path) if line.strip()]
rows.sort(key=lambda r: r['timestamp'])
n = len(rows)
by_prefix = {}
parent = [-1] * n
turn = np.zeros(n, dtype=int)
children = [[] for _ in range(n)]
for i, r in enumerate(rows):
    h = r['hash_ids']
    for length in range(len(h), 1, -1):
        j = by_prefix.get(tuple(h[:length]))
        if j is not None:
            parent[i] = j
            turn[i] = turn[j] + 1
            children[j].append(i)
            break
    if len(h) > 1:
        by_prefix[tuple(h[:-1])] = i
    by_prefix.setdefault(tuple(h), i)

ts = np.array([r['timestamp'] for r in rows]) / 1000
cont = np.array([1 if c else 0 for c in children])
next_gap = np.array([ts[c[0]] - ts[i] if c else np.nan for i, c in enumerate(children)])
prev_gap = np.array([ts[i] - ts[p] if p >= 0 else np.nan for i, p in enumerate(parent)])
inp = np.array([r['input_length'] for r in rows])
out = np.array([r['output_length'] for r in rows])
new_blocks = np.array([len(r['hash_ids']) - (len(rows[p]['hash_ids']) - 1 if p >= 0 else 0) for r, p in zip(rows, parent)])


def auc(x, y):
    order = np.argsort(x, kind='stable')
    ranks = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1 = y.sum()
    n0 = len(y) - n1
    return (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


keep = ts < ts.max() - 600  # a follow-up of a later prompt may fall past the end of the trace
y = cont[keep].astype(float)

# Facts about the conversations.
by_turn = ', '.join(f'{t}{"+" if t == 4 else ""}: {cont[keep & (np.minimum(turn, 4) == t)].mean():.2f}' for t in range(5))
print(f'P(another turn | turn k) for prompts >= 600 s before the end: {by_turn}')
gaps = prev_gap[~np.isnan(prev_gap)]
p10, p50, p90 = np.percentile(gaps, [10, 50, 90])
print(f'inter-turn gaps ({len(gaps)} turns): p10 {p10:.0f} s, p50 {p50:.0f} s, p90 {p90:.0f} s')
both = ~np.isnan(prev_gap) & ~np.isnan(next_gap)
print(f'correlation of log previous gap with log next gap ({both.sum()} prompts with both): {np.corrcoef(np.log(prev_gap[both]), np.log(next_gap[both]))[0, 1]:.2f}')
out_bucket = np.floor(np.log2(np.maximum(out, 1))).astype(int)
rates = [cont[keep & (out_bucket == b)].mean() for b in sorted(set(out_bucket[keep])) if (keep & (out_bucket == b)).sum() >= 100]
print(f'P(another turn) by log2 output-length bucket (buckets of >= 100 prompts): {min(rates):.2f}-{max(rates):.2f}')
# Continuations as the lifetime predictor's loader finds them: the earlier prompt sharing the
# longest run of leading blocks (at least 2), latest first.
trie = {}  # (node, block) -> node
latest = {}  # node -> (index of the latest prompt through it, depth)
kinds = {'extend the whole prompt but its last block': 0, 'branch off earlier': 0, 'resend the same prompt': 0}
for i, r in enumerate(rows):
    h = r['hash_ids']
    node, best = 0, None
    for d, b in enumerate(h):
        node = trie.get((node, b))
        if node is None:
            break
        if d >= 1:
            best = (latest[node], d + 1)
    if best is not None:
        ph = rows[best[0]]['hash_ids']
        if h == ph:
            kinds['resend the same prompt'] += 1
        elif best[1] >= len(ph) - 1:
            kinds['extend the whole prompt but its last block'] += 1
        else:
            kinds['branch off earlier'] += 1
    node = 0
    for b in h:
        node = trie.setdefault((node, b), len(trie) + 1)
        latest[node] = i
print(f'continuations ({sum(kinds.values())} prompts share >= 2 leading blocks with an earlier one): ' + ', '.join(f'{v} {k}' for k, v in kinds.items()))
print(f'{n} prompts; first turns {np.mean(turn == 0):.3f}; {keep.sum()} arrive >= 600 s before the end, {y.mean():.3f} of them get a follow-up')
print(f'AUC turn {auc(turn[keep].astype(float), y):.3f}, new blocks (fewer first) {auc(-new_blocks[keep].astype(float), y):.3f}, '
      f'previous gap (shorter first) {auc(-np.nan_to_num(prev_gap[keep], nan=1e9), y):.3f}')
pg = np.where(np.isnan(prev_gap), 0, np.log1p(np.nan_to_num(prev_gap)))
X = np.stack([np.log1p(turn), np.log1p(inp), np.log1p(out), np.log1p(new_blocks), pg, np.isnan(prev_gap), turn == 0, out < 30], 1).astype(float)[keep]
X = (X - X.mean(0)) / X.std(0)
X = np.hstack([X, np.ones((len(X), 1))])
half = len(X) // 2
w = np.zeros(X.shape[1])
for _ in range(3000):
    p = 1 / (1 + np.exp(-X[:half] @ w))
    w -= 0.5 * X[:half].T @ (p - y[:half]) / half
score = X[half:] @ w
print(f'logistic regression on all of them (fit on the first half, scored on the second): AUC {auc(score, y[half:]):.3f}')
ranked = y[half:][np.argsort(-score)]
for q in (0.25, 0.5):
    print(f'  top {q:.0%} by score: P(follow-up) {ranked[:int(len(ranked) * q)].mean():.3f}')
for horizon in (30, 60, 120):
    soon = (np.nan_to_num(next_gap, nan=1e9) < horizon)[keep]
    by_out = ', '.join(f'{lo}-{hi if hi < 1e8 else "inf"}: {soon[((out >= lo) & (out < hi))[keep]].mean():.3f}' for lo, hi in ((0, 30), (30, 200), (200, 500), (500, 1e9)))
    by_turn = ', '.join(f'{t}{"+" if t == 3 else ""}: {soon[(np.minimum(turn, 3) == t)[keep]].mean():.3f}' for t in range(4))
    print(f'P(next turn within {horizon} s) {soon.mean():.3f}; by output tokens {by_out}; by turn {by_turn}')
