#!/usr/bin/env python3
"""Generate the Hugging Face reference fixtures in test/fixtures/.

Each fixture is a tiny, randomly initialised model built with `transformers`
itself, saved as a real Hugging Face model directory (config.json,
*.safetensors, tokenizer files) together with `expected.safetensors`, which
holds reference activations computed by the pinned `transformers` eager
implementation on a fixed ragged batch of three sequences.

Run it through `bash tools/fixtures-env.sh`, which sets up the pinned
environment (.venv-fixtures).  Everything is seeded and computed on the CPU in
float32 with one thread, so reruns give identical values.

Usage: gen_fixtures.py [--out test/fixtures] [--only NAME ...]
"""

import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import safetensors  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

GENERATOR = "tools/gen_fixtures.py"
FORMAT = "layerlab-fixture"
FORMAT_VERSION = "1"

VOCAB = 512
SEQ_LENS = (7, 1, 13)
POS_START = (0, 0, 4)  # sequence 3 uses explicit positions 4..16
INPUT_SEED = 20240611
MAX_FIXTURE_BYTES = 1_500_000
RELOAD_TOL = 1e-5

# A small built-in English corpus for training the fixture tokenizers.
CORPUS = [
    "The quick brown fox jumps over the lazy dog. The dog does not seem to mind; "
    "it has seen the fox many times before, and it knows the fox will be gone by evening.",
    "A language model reads a sequence of tokens and predicts the next one. Each layer "
    "mixes information between positions with attention, then transforms every position "
    "on its own with a small feed-forward network.",
    "In the morning the village market opens early. Farmers bring apples, pears, bread and "
    "cheese, and the baker sells warm rolls to the people waiting in line. By noon most of "
    "the stalls are empty and the square is quiet again.",
    "Numbers are written with digits: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9. Ten plus twenty is thirty, "
    "and 12 times 12 is 144. She counted 365 days in the year and 24 hours in every day.",
    "When you run the program, it loads the weights from disk, moves them to the device, and "
    "then runs the layers one by one. If something goes wrong, it prints a message and stops.",
    "The river flows past the old mill and under the stone bridge. Children like to throw "
    "small sticks into the water on one side and watch them come out on the other side.",
    "\"Where are you going?\" asked the teacher. \"To the library,\" said the student, \"because "
    "I want to read about the history of the moon, the stars, and the sun.\"",
    "Good tests are small, fast and deterministic. They compare what the code computes with "
    "values that are known to be right, and they say clearly what went wrong when they fail.",
]


# --------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------

def _sp_decoder():
    return decoders.Sequence([
        decoders.Replace("\u2581", " "),
        decoders.ByteFallback(),
        decoders.Fuse(),
        decoders.Strip(" ", 1, 0),
    ])


def train_sentencepiece_bpe(vocab_size=VOCAB):
    """SentencePiece-style BPE as found in Llama/Mistral tokenizer.json files.

    ids 0,1,2 = <unk>, <s>, </s>; ids 3..258 = byte-fallback tokens <0x00>..<0xFF>;
    the rest are learnt pieces (with the U+2581 word-boundary marker).
    """
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = ["<0x%02X>" % b for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Train with split=True so that no merge crosses a word boundary (like
    # sentencepiece); the saved tokenizer uses split=False like the converter.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(byte_tokens),
        special_tokens=specials,
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    d = json.loads(tok.to_str())
    trained = sorted(d["model"]["vocab"].items(), key=lambda kv: kv[1])
    new_vocab = {}
    for s in specials:
        new_vocab[s] = len(new_vocab)
    for s in byte_tokens:
        new_vocab[s] = len(new_vocab)
    for s, _ in trained:
        if s not in new_vocab:
            new_vocab[s] = len(new_vocab)
    assert len(new_vocab) <= vocab_size, len(new_vocab)
    d["model"]["vocab"] = new_vocab
    d["model"]["byte_fallback"] = True
    d["model"]["fuse_unk"] = True
    d["model"]["unk_token"] = "<unk>"
    for at in d["added_tokens"]:
        at["id"] = new_vocab[at["content"]]
    final = Tokenizer.from_str(json.dumps(d))
    final.normalizer = None
    final.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    final.decoder = _sp_decoder()
    final.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return final, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                       bos_token_id=1, eos_token_id=2)


def train_bytelevel_bpe(vocab_size=VOCAB):
    """GPT-2 style byte-level BPE with the <|endoftext|> special token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    assert tok.get_vocab_size() <= vocab_size
    eot = tok.token_to_id("<|endoftext|>")
    return tok, dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                     bos_token_id=eot, eos_token_id=eot)


def save_tokenizer(tok, special, max_len, path):
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=special["bos_token"],
        eos_token=special["eos_token"],
        unk_token=special["unk_token"],
        model_max_length=max_len,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(path)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

def reinit(model, seed, std, emb_std, bias_std=0.1, norm_noise=0.1):
    """Re-initialise every parameter so that nothing is left at an init default
    (zero biases, unit norms) and the outputs are not degenerate."""
    g = torch.Generator().manual_seed(seed)
    seen = set()
    for mod_name, mod in model.named_modules():
        is_norm = isinstance(mod, torch.nn.LayerNorm) or "RMSNorm" in type(mod).__name__
        is_emb = isinstance(mod, torch.nn.Embedding)
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            with torch.no_grad():
                if is_norm and pname == "weight":
                    p.copy_(1.0 + norm_noise * noise)
                elif pname == "bias":
                    p.copy_(bias_std * noise)
                elif is_emb:
                    p.copy_(emb_std * noise)
                else:
                    p.copy_(std * noise)


def round_params(model, dtype):
    for p in model.parameters():
        p.data = p.data.to(dtype).float()


def make_inputs():
    rng = np.random.default_rng(INPUT_SEED)
    toks, pos, offsets = [], [], [0]
    for n, p0 in zip(SEQ_LENS, POS_START):
        toks.append(rng.integers(0, VOCAB, size=n, dtype=np.int64))
        pos.append(np.arange(p0, p0 + n, dtype=np.int64))
        offsets.append(offsets[-1] + n)
    return toks, pos, np.array(offsets, dtype=np.int64)


class Capture:
    """Forward hooks collecting attn_z / attn_out / mlp_out for every layer."""

    def __init__(self, layers, attn_proj, mlp):
        n = len(layers)
        self.z = [[] for _ in range(n)]
        self.ao = [[] for _ in range(n)]
        self.mo = [[] for _ in range(n)]
        self.handles = []
        for i, layer in enumerate(layers):
            self.handles.append(layer.get_submodule(attn_proj).register_forward_hook(self._attn_hook(i)))
            self.handles.append(layer.get_submodule(mlp).register_forward_hook(self._mlp_hook(i)))

    def _attn_hook(self, i):
        def hook(mod, inp, out):
            self.z[i].append(inp[0].detach()[0].clone())
            self.ao[i].append(out.detach()[0].clone())
        return hook

    def _mlp_hook(self, i):
        def hook(mod, inp, out):
            self.mo[i].append(out.detach()[0].clone())
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()

    def stacked(self):
        cat = lambda lst: torch.stack([torch.cat(x, 0) for x in lst], 0).numpy().astype(np.float32)
        return cat(self.z), cat(self.ao), cat(self.mo)


@torch.no_grad()
def run_reference(model, toks, pos, layers, attn_proj, mlp):
    cap = Capture(layers, attn_proj, mlp)
    hs, logits, loss = [], [], []
    try:
        for t, p in zip(toks, pos):
            ids = torch.from_numpy(t)[None]
            out = model(input_ids=ids, position_ids=torch.from_numpy(p)[None],
                        output_hidden_states=True, labels=ids, use_cache=False)
            hs.append(torch.stack([h[0] for h in out.hidden_states], 0))
            logits.append(out.logits[0].float())
            loss.append(out.loss.float().item())
    finally:
        cap.remove()
    z, ao, mo = cap.stacked()
    return {
        "hidden_states": torch.cat(hs, 1).numpy().astype(np.float32),
        "attn_z": z,
        "attn_out": ao,
        "mlp_out": mo,
        "logits": torch.cat(logits, 0).numpy().astype(np.float32),
        "loss": np.array(loss, dtype=np.float32),
    }


@torch.no_grad()
def logits_only(model, toks, pos):
    out = []
    for t, p in zip(toks, pos):
        r = model(input_ids=torch.from_numpy(t)[None], position_ids=torch.from_numpy(p)[None], use_cache=False)
        out.append(r.logits[0].float())
    return torch.cat(out, 0).numpy()


def llama_like_spec(cls, cfg):
    return dict(cls=cls, cfg=cfg, layers=lambda m: m.model.layers, attn_proj="self_attn.o_proj", mlp="mlp")


def fixture_specs(sp_special, bl_special):
    ids_sp = dict(bos_token_id=sp_special["bos_token_id"], eos_token_id=sp_special["eos_token_id"])
    ids_bl = dict(bos_token_id=bl_special["bos_token_id"], eos_token_id=bl_special["eos_token_id"])
    specs = []

    specs.append(dict(
        name="llama_gqa", seed=1001, store_dtype=torch.float32, shard=None, tokenizer="sp",
        std=0.15, emb_std=0.5,
        **llama_like_spec(LlamaForCausalLM, LlamaConfig(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
            rope_theta=12345.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
            attn_implementation="eager", **ids_sp)),
    ))

    # original_max_position_embeddings=64 (not 32) so that, with head_dim 16 and
    # theta 5e5, all three llama3 regimes occur: pair 0 (wavelen 6.3 < 16) is
    # kept, pair 1 (wavelen 32.4 in [16, 64]) is smoothly interpolated, pairs
    # 2..7 (wavelen > 64) are divided by `factor`.  With 32 the medium band
    # would be empty (wavelen 32.4 > 32).
    specs.append(dict(
        name="llama3_rope", seed=1002, store_dtype=torch.bfloat16, shard="100KB", tokenizer="sp",
        std=0.15, emb_std=0.5,
        **llama_like_spec(LlamaForCausalLM, LlamaConfig(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=512,
            rope_theta=500000.0, rope_scaling={
                "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
            rms_norm_eps=1e-5, tie_word_embeddings=True,
            attn_implementation="eager", **ids_sp)),
    ))

    specs.append(dict(
        name="mistral", seed=1003, store_dtype=torch.float16, shard=None, tokenizer="sp",
        std=0.15, emb_std=0.5, sliding_window_probe=True,
        **llama_like_spec(MistralForCausalLM, MistralConfig(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False,
            attn_implementation="eager", **ids_sp)),
    ))

    specs.append(dict(
        name="qwen2", seed=1004, store_dtype=torch.float32, shard=None, tokenizer="sp",
        std=0.15, emb_std=0.5,
        **llama_like_spec(Qwen2ForCausalLM, Qwen2Config(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rope_theta=10000.0, rms_norm_eps=1e-6, use_sliding_window=False, max_window_layers=2,
            tie_word_embeddings=False, attn_implementation="eager", **ids_sp)),
    ))

    specs.append(dict(
        name="gpt2", seed=1005, store_dtype=torch.float32, shard=None, tokenizer="bl",
        std=0.15, emb_std=0.3,
        cls=GPT2LMHeadModel,
        cfg=GPT2Config(
            vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=4,
            activation_function="gelu_new", tie_word_embeddings=True,
            attn_implementation="eager", **ids_bl),
        layers=lambda m: m.transformer.h, attn_proj="attn.c_proj", mlp="mlp",
    ))
    return specs


def probe_sliding_window(model, toks, pos):
    """Does the eager path of the pinned transformers apply config.sliding_window?

    Runs the 13-token sequence with sliding_window None, 13 (covers everything)
    and 4 and returns the max |diff| of the logits against None."""
    t, p = [toks[2]], [pos[2]]
    saved = model.config.sliding_window
    res = {}
    try:
        model.config.sliding_window = None
        base = logits_only(model, t, p)
        for w in (13, 4):
            model.config.sliding_window = w
            res[w] = float(np.abs(logits_only(model, t, p) - base).max())
    finally:
        model.config.sliding_window = saved
    return res


def canonicalize_safetensors_header(path):
    """safetensors stores __metadata__ from a Rust HashMap, so its key order
    changes from run to run.  Rewrite the header (same length) with the
    metadata keys sorted so that reruns give byte-identical files."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n).decode("utf-8"))
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        new = json.dumps(header, separators=(",", ":")).encode("utf-8")
        assert len(new) <= n, (len(new), n)
        f.seek(8)
        f.write(new + b" " * (n - len(new)))


def dir_size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


def build_fixture(spec, toks, pos, offsets, tok_objs, out_root):
    name = spec["name"]
    path = os.path.join(out_root, name)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)

    torch.manual_seed(spec["seed"])
    model = spec["cls"](spec["cfg"]).eval()
    assert model.config._attn_implementation == "eager"
    reinit(model, spec["seed"], spec["std"], spec["emb_std"])
    if spec["store_dtype"] != torch.float32:
        round_params(model, spec["store_dtype"])

    notes = []
    if spec.get("sliding_window_probe"):
        probe = probe_sliding_window(model, toks, pos)
        applied = probe[4] > 1e-4 and probe[13] == 0.0
        notes.append("sliding-window probe (13 tokens): max|dlogit| W=13 vs None = %.3g, W=4 vs None = %.3g -> %s"
                     % (probe[13], probe[4], "APPLIED by eager path" if applied else "NOT applied"))
        model.config.sliding_window = 6 if applied else None
        notes.append("config.sliding_window = %r" % model.config.sliding_window)

    layers = spec["layers"](model)
    ref = run_reference(model, toks, pos, layers, spec["attn_proj"], spec["mlp"])

    cfg = model.config
    L = cfg.num_hidden_layers
    d = cfg.hidden_size
    H = cfg.num_attention_heads
    T = int(offsets[-1])
    assert ref["hidden_states"].shape == (L + 1, T, d)
    assert ref["attn_z"].shape[:2] == (L, T) and ref["attn_z"].shape[2] == ref["attn_z"].shape[2] // H * H
    assert ref["attn_out"].shape == (L, T, d) and ref["mlp_out"].shape == (L, T, d)
    assert ref["logits"].shape == (T, cfg.vocab_size)
    # Hook consistency: resid_pre[i+1] = resid_pre[i] + attn_out[i] + mlp_out[i]
    # (the last hidden state is after the final norm, so stop before it).
    hs = ref["hidden_states"]
    for i in range(L - 1):
        err = np.abs(hs[i] + ref["attn_out"][i] + ref["mlp_out"][i] - hs[i + 1]).max()
        assert err < 1e-5, (name, i, err)

    # Save the HF model directory in the storage dtype.
    save_kwargs = dict(safe_serialization=True)
    if spec["shard"]:
        save_kwargs["max_shard_size"] = spec["shard"]
    model.to(spec["store_dtype"]).save_pretrained(path, **save_kwargs)

    tok, special = tok_objs[spec["tokenizer"]]
    save_tokenizer(tok, special, getattr(cfg, "max_position_embeddings", getattr(cfg, "n_positions", 256)), path)

    tensors = {
        "tokens": np.concatenate(toks).astype(np.int32),
        "seq_offsets": offsets.astype(np.int64),
        "position_ids": np.concatenate(pos).astype(np.int32),
    }
    for k in ("hidden_states", "attn_z", "attn_out", "mlp_out", "logits", "loss"):
        tensors[k] = np.ascontiguousarray(ref[k])
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "generator": GENERATOR,
    }
    save_file(tensors, os.path.join(path, "expected.safetensors"), metadata=metadata)
    canonicalize_safetensors_header(os.path.join(path, "expected.safetensors"))

    # Independent check: reload the saved directory with the Auto classes (f32).
    re = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager").eval()
    re_logits = logits_only(re, toks, pos)
    reload_err = float(np.abs(re_logits - ref["logits"]).max())
    if not reload_err <= RELOAD_TOL:
        raise SystemExit("%s: reloaded logits differ from stored ones by %g" % (name, reload_err))

    # Tokenizer round trip through AutoTokenizer.
    at = AutoTokenizer.from_pretrained(path)
    sample = "The quick brown fox, 42 caf\u00e9s."
    enc = at(sample)["input_ids"]
    dec = at.decode(enc, skip_special_tokens=True)
    if dec != sample:
        raise SystemExit("%s: tokenizer round trip failed: %r -> %r" % (name, sample, dec))

    size = dir_size(path)
    if size > MAX_FIXTURE_BYTES:
        raise SystemExit("%s: fixture is %d bytes (> %d)" % (name, size, MAX_FIXTURE_BYTES))

    lg = ref["logits"]
    hd = ref["attn_z"].shape[2] // H
    kv = getattr(cfg, "num_key_value_heads", H)
    print("== %s: %s" % (name, type(model).__name__))
    print("   L=%d d=%d H=%d kv=%d hd=%d vocab=%d tied=%s stored=%s"
          % (L, d, H, kv, hd, cfg.vocab_size, cfg.tie_word_embeddings, str(spec["store_dtype"]).split(".")[1]))
    print("   files: %s" % ", ".join(sorted(os.listdir(path))))
    print("   max|logit|=%.4f logit std=%.4f loss=%s" % (np.abs(lg).max(), lg.std(),
                                                        ", ".join("%.4f" % x for x in ref["loss"])))
    print("   reload max|dlogit|=%.3g  tokenizer vocab=%d  sample ids=%s" % (reload_err, at.vocab_size, enc))
    print("   size=%d bytes" % size)
    for n in notes:
        print("   " + n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "test", "fixtures"))
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print("transformers %s, tokenizers %s, safetensors %s, torch %s, numpy %s" % (
        transformers.__version__, tokenizers.__version__, safetensors.__version__,
        torch.__version__, np.__version__))

    toks, pos, offsets = make_inputs()
    sp = train_sentencepiece_bpe()
    bl = train_bytelevel_bpe()
    tok_objs = {"sp": sp, "bl": bl}
    os.makedirs(args.out, exist_ok=True)
    for spec in fixture_specs(sp[1], bl[1]):
        if args.only and spec["name"] not in args.only:
            continue
        build_fixture(spec, toks, pos, offsets, tok_objs, args.out)
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
