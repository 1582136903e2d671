"""Global prefix tree of a batch's prompts, flattened into single-level sharing groups (BatchLLM).

A prompt is a sequence of chunk ids (``prefix_hashes``: ids of ``prefix_block_tokens``-token
chunks, equal ids = equal content) plus, where the ids stop short of the prompt, a tail of
content no other prompt has. The radix tree over these sequences is built by sorting them and
walking the longest common prefixes of neighbours (no node per chunk: a batch of 6,400 prompts of
275 chunks makes ~13k nodes, not 1.8M).

BatchLLM's kernels share one prefix per request, so the tree is flattened into one level of groups
``[shared prefix, distinct suffixes]`` bottom-up: for a node ``c`` with child ``g``, lifting ``g``
one level (folding ``c``'s tokens into ``g``'s prefix) gains ``(leaves(g) - 1) * |g|`` shared
tokens and costs ``|c|`` tokens computed once more, so ``g`` is lifted when
``(leaves(g) - 1) * |g| - |c| > 0``; a ``c`` left with one child (and no prompt ending in it) is
merged into that child. The root's children are then the groups. A group of one prompt, or whose
prefix is shorter than one KV block, shares nothing; the shared part is rounded down to whole
blocks (the KV cache shares whole blocks only).

Pure Python, no SimPy: ``sim.scheduling.batchllm`` calls :func:`group_prompts` once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the tree needs of one prompt."""

    ids: tuple[int, ...]        # chunk ids from the start of the prompt (may be empty)
    tokens: int                 # prompt tokens
    chunk_tokens: int = 16      # tokens per id

    @property
    def real_ids(self) -> tuple[int, ...]:
        """The ids that cover the prompt (ids past its end are dropped)."""
        return self.ids[:-(-self.tokens // self.chunk_tokens)]

    def token_depth(self, chunks: int) -> int:
        """Tokens covered by the first ``chunks`` elements of the sequence; one past the ids is
        the unique tail, i.e. the whole prompt."""
        if chunks <= len(self.real_ids):
            return min(chunks * self.chunk_tokens, self.tokens)
        return self.tokens


@dataclass(frozen=True, slots=True)
class PrefixGroup:
    """Prompts (indices into the input) that share a prefix, in tree order (prompts sharing
    longer prefixes are neighbours, so the ordinary prefix cache catches nested sharing)."""

    members: tuple[int, ...]
    prefix_tokens: int          # the group's prefix after the gain rule (0: not shared)
    shared_tokens: int          # what the KV cache can share: whole blocks, < every prompt

    @property
    def is_shared(self) -> bool:
        return self.shared_tokens > 0


class PrefixNode:
    """A radix-tree node: an edge of ``tokens`` tokens from its parent."""

    __slots__ = ("depth", "token_depth", "tokens", "children", "requests", "leaves")

    def __init__(self, depth: int, token_depth: int):
        self.depth = depth                  # chunks from the root (construction only)
        self.token_depth = token_depth      # tokens from the root
        self.tokens = 0                     # tokens of the edge into this node
        self.children: list[PrefixNode] = []
        self.requests: list[int] = []       # prompts that end exactly here
        self.leaves = 0                     # prompts in this subtree

    def __repr__(self) -> str:
        return (f"PrefixNode(tokens={self.tokens}, leaves={self.leaves}, "
                f"requests={self.requests}, children={len(self.children)})")


def _common_prefix(a: tuple, b: tuple) -> int:
    """Length of the longest common prefix, by bisection on slices (compared in C)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    hi -= 1                                 # a[:hi+1] != b[:hi+1] is known
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def build_tree(prompts: Sequence[Prompt]) -> PrefixNode:
    """Radix tree of the prompts: sort the id sequences, then a stack walk over neighbours'
    common prefixes (each prompt's unique tail is one extra element that matches nothing)."""
    seqs = [p.real_ids for p in prompts]
    lengths = [len(s) + (p.token_depth(len(s)) < p.tokens) for s, p in zip(seqs, prompts)]
    root = PrefixNode(0, 0)
    stack = [root]
    prev: tuple | None = None
    for i in sorted(range(len(prompts)), key=seqs.__getitem__):
        s, p = seqs[i], prompts[i]
        common = 0 if prev is None else _common_prefix(prev, s)
        last = None
        while stack[-1].depth > common:
            last = stack.pop()
        top = stack[-1]
        if top.depth < common:              # split the edge into `last` (top's newest child)
            mid = PrefixNode(common, p.token_depth(common))
            top.children[-1] = mid
            mid.children.append(last)
            stack.append(mid)
            top = mid
        if lengths[i] == common:
            top.requests.append(i)          # same content as a prompt already placed
        else:
            leaf = PrefixNode(lengths[i], p.tokens)
            leaf.requests.append(i)
            top.children.append(leaf)
            stack.append(leaf)
        prev = s
    return root


def _postorder(root: PrefixNode) -> list[tuple[PrefixNode, PrefixNode | None]]:
    """(node, parent) pairs, every node after all of its descendants (iterative: deep trees)."""
    order: list[tuple[PrefixNode, PrefixNode | None]] = []
    stack: list[tuple[PrefixNode, PrefixNode | None]] = [(root, None)]
    while stack:
        node, parent = stack.pop()
        order.append((node, parent))
        stack.extend((child, node) for child in reversed(node.children))
    order.reverse()
    return order


def flatten(root: PrefixNode) -> list[PrefixNode]:
    """Apply the gain rule bottom-up; return the root's children, each one group's subtree
    (its ``tokens`` then being the group's whole prefix)."""
    replaced: dict[int, list[PrefixNode]] = {}     # id(node) -> what stands for it in its parent
    for node, parent in _postorder(root):
        node.tokens = node.token_depth - (parent.token_depth if parent is not None else 0)
        children = [x for child in node.children for x in replaced.pop(id(child))]
        if parent is None:
            node.children = children
            break
        kept: list[PrefixNode] = []
        lifted: list[PrefixNode] = []
        for g in children:
            if (g.leaves - 1) * g.tokens - node.tokens > 0:
                g.tokens += node.tokens     # g now carries node's tokens in its own prefix
                lifted.append(g)
            else:
                kept.append(g)
        node.children = kept
        node.leaves = len(node.requests) + sum(k.leaves for k in kept)
        if node.requests:
            replaced[id(node)] = lifted + [node]
        elif len(kept) == 1:                # merge node into its only remaining child
            kept[0].tokens += node.tokens
            replaced[id(node)] = lifted + kept
        elif kept:                          # still branching: node stays a group's root
            replaced[id(node)] = lifted + [node]
        else:                               # every child lifted: node's tokens live on in them
            replaced[id(node)] = lifted
    return root.children


def _members(node: PrefixNode) -> list[int]:
    out: list[int] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.extend(n.requests)
        stack.extend(reversed(n.children))
    return out


def group_prompts(prompts: Sequence[Prompt], block_size: int) -> list[PrefixGroup]:
    """Single-level sharing groups of ``prompts``, in tree order (every prompt in exactly one).

    Prompts with different ``chunk_tokens`` cannot be compared, so each chunk size gets its own
    tree. A group's shared part is its prefix rounded down to whole blocks, and short of every
    member's last prompt token (which must run to give logits, so is never taken from a cache).
    """
    groups: list[PrefixGroup] = []
    by_chunk: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_chunk.setdefault(p.chunk_tokens, []).append(i)
    for index in by_chunk.values():
        for node in flatten(build_tree([prompts[i] for i in index])):
            members = [index[j] for j in _members(node)]
            shared = node.tokens // block_size * block_size
            shared = min([shared] + [(prompts[i].tokens - 1) // block_size * block_size
                                     for i in members])
            if len(members) > 1 and shared > 0:
                groups.append(PrefixGroup(tuple(members), node.tokens, shared))
            else:
                groups.extend(PrefixGroup((i,), 0, 0) for i in members)
    return groups
