"""Word-level tokenizer and small transformer text encoder of the embedded default model.

The tokenizer rules are mirrored by tokenizer.json (lower-case, split on runs of non-alphanumerics, keep the
reserved identifier tokens <v1>…<v8> whole, BOS … EOS then PAD to max_length); the encoder is exported to ONNX.
"""

import json
import re

import torch
from torch import nn

PAD, BOS, EOS, UNK = '<pad>', '<bos>', '<eos>', '<unk>'
IDENTIFIERS = [f'<v{i}>' for i in range(1, 9)]
SPECIALS = [PAD, BOS, EOS, UNK] + IDENTIFIERS
TOKEN_RE = re.compile(r'<v[1-8]>|[a-z0-9]+')


def split_words(text):
    return TOKEN_RE.findall(text.lower())


class Tokenizer:
    def __init__(self, vocab, max_length=16):
        self.vocab = list(vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length

    @classmethod
    def build(cls, texts, max_length=16):
        words = sorted({w for t in texts for w in split_words(t)} - set(SPECIALS))
        return cls(SPECIALS + words, max_length)

    def encode(self, text):
        """[BOS, w…, EOS, PAD…] of length max_length; words beyond max_length-2 are dropped."""
        unk = self.ids[UNK]
        ids = [self.ids.get(w, unk) for w in split_words(text)][: self.max_length - 2]
        ids = [self.ids[BOS]] + ids + [self.ids[EOS]]
        return ids + [self.ids[PAD]] * (self.max_length - len(ids))

    def __call__(self, texts):
        return torch.tensor([self.encode(t) for t in texts], dtype=torch.int64)

    def to_json(self):
        return {
            'type': 'word-level',
            'version': 1,
            'max_length': self.max_length,
            'lowercase': True,
            'pattern': TOKEN_RE.pattern,
            'rules': [
                'lower-case the prompt',
                'tokens are the matches of `pattern` in order: reserved identifiers <v1>..<v8> or runs of [a-z0-9]; '
                'everything else separates tokens',
                'ids = [bos_id] + [vocab index of token, or unk_id] + [eos_id], truncated to max_length-2 words, '
                'then padded with pad_id to max_length',
            ],
            'pad_id': self.ids[PAD],
            'bos_id': self.ids[BOS],
            'eos_id': self.ids[EOS],
            'unk_id': self.ids[UNK],
            'identifier_tokens': {t: self.ids[t] for t in IDENTIFIERS},
            'vocab': self.vocab,
        }

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            d = json.load(f)
        return cls(d['vocab'], d['max_length'])


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer layer, bidirectional attention over all max_length positions (PAD included)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (d // self.heads) ** -0.5, dim=-1)
        x = x + self.proj(torch.matmul(att, v).permute(0, 2, 1, 3).reshape(b, s, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, dim=128, layers=3, heads=4, max_length=16):
        super().__init__()
        self.config = dict(vocab_size=vocab_size, dim=dim, layers=layers, heads=heads, max_length=max_length)
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.zeros(max_length, dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.01)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, input_ids):
        x = self.token_embedding(input_ids) + self.position_embedding[None, : input_ids.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.final_layer_norm(x)  # last_hidden_state [B, L, dim]
