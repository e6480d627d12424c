#!/usr/bin/env python3
"""Small valid GGUF files (v1, v2, v3, a quantized one, two layers) to seed the fuzz_gguf target:
the real files in ../shared are too large for libFuzzer inputs."""
import struct, os
import sys
out = sys.argv[1] if len(sys.argv) > 1 else 'build-fuzz/fuzz_gguf.corpus'
def build(version, n_layers=1, tokens=4, quant=False, extra_kv=()):
    cw = 'I' if version == 1 else 'Q'
    def s(x): x = x.encode(); return struct.pack('<'+cw, len(x)) + x
    kvs = []
    def kv(k, t, payload): kvs.append(s(k) + struct.pack('<I', t) + payload)
    kv('general.architecture', 8, s('llama'))
    kv('general.alignment', 4, struct.pack('<I', 32))
    for k, v in (('llama.embedding_length', 8), ('llama.block_count', n_layers), ('llama.attention.head_count', 2),
                 ('llama.attention.head_count_kv', 1), ('llama.feed_forward_length', 16), ('llama.context_length', 32),
                 ('llama.rope.dimension_count', 4), ('tokenizer.ggml.bos_token_id', 1), ('tokenizer.ggml.eos_token_id', 2)):
        kv(k, 4, struct.pack('<I', v))
    kv('llama.attention.layer_norm_rms_epsilon', 6, struct.pack('<f', 1e-5))
    kv('llama.rope.freq_base', 6, struct.pack('<f', 10000.0))
    kv('tokenizer.ggml.tokens', 9, struct.pack('<I', 8) + struct.pack('<'+cw, tokens) + b''.join(s('t%d' % i) for i in range(tokens)))
    kv('tokenizer.ggml.scores', 9, struct.pack('<I', 6) + struct.pack('<'+cw, tokens) + struct.pack('<%df' % tokens, *range(tokens)))
    kv('tokenizer.ggml.token_type', 9, struct.pack('<I', 5) + struct.pack('<'+cw, tokens) + struct.pack('<%di' % tokens, *([1]*tokens)))
    kv('t.bool', 7, b'\x01'); kv('t.f64', 12, struct.pack('<d', 0.5)); kv('t.i64', 11, struct.pack('<q', -3))
    kv('t.u16', 2, struct.pack('<H', 7)); kv('t.i16', 3, struct.pack('<h', -7)); kv('t.i8', 1, b'\xff'); kv('t.u8', 0, b'\x07')
    kv('t.u64', 10, struct.pack('<Q', 9))
    for k in extra_kv: kvs.append(k)
    tensors = [('token_embd.weight', [8, tokens], 0)]
    for l in range(n_layers):
        tensors += [('blk.%d.attn_norm.weight' % l, [8], 0), ('blk.%d.attn_q.weight' % l, [256, 8] if quant else [8, 8], 12 if quant else 1),
                    ('blk.%d.attn_k.weight' % l, [8, 4], 30), ('blk.%d.attn_v.weight' % l, [8, 4], 0),
                    ('blk.%d.attn_output.weight' % l, [8, 8], 0), ('blk.%d.ffn_norm.weight' % l, [8], 0),
                    ('blk.%d.ffn_gate.weight' % l, [8, 16], 0), ('blk.%d.ffn_up.weight' % l, [8, 16], 0),
                    ('blk.%d.ffn_down.weight' % l, [16, 8], 0)]
    tensors += [('output_norm.weight', [8], 0), ('rope_freqs.weight', [2], 0)]
    sizes = {0: (1, 4), 1: (1, 2), 30: (1, 2), 12: (256, 144)}
    hdr = b'GGUF' + struct.pack('<I', version) + struct.pack('<'+cw+cw, len(tensors), len(kvs)) + b''.join(kvs)
    off = 0; infos = b''; blobs = []
    for name, ne, ty in tensors:
        b, by = sizes[ty]; n = 1
        for x in ne: n *= x
        nb = n // b * by
        infos += s(name) + struct.pack('<I', len(ne)) + b''.join(struct.pack('<'+cw, x) for x in ne) + struct.pack('<IQ', ty, off)
        blobs.append((off, nb)); off = (off + nb + 31) // 32 * 32
    data = hdr + infos
    data += b'\0' * ((-len(data)) % 32)
    start = len(data)
    body = bytearray(blobs[-1][0] + blobs[-1][1])
    for i in range(len(body)): body[i] = i * 7 & 255
    return data + bytes(body)
for v in (1, 2, 3):
    open(f'{out}/llama_v{v}.gguf', 'wb').write(build(v))
open(f'{out}/llama_q4k.gguf', 'wb').write(build(3, quant=True))
open(f'{out}/llama_2layers.gguf', 'wb').write(build(2, n_layers=2, tokens=6))
# llama2.c seed: dim 8 hidden 12 layers 1 heads 4 kv 2 vocab -5 seq 2
h = (8, 12, 1, 4, 2, -5, 2); dim, hid, L, H, KV, V, S = h; V = -V; hs = dim // H; kvd = dim * KV // H
n = V*dim + L*dim + L*dim*dim + 2*L*kvd*dim + L*dim*dim + L*dim + 3*L*hid*dim + dim + S*hs + V*dim
open(f'{out}/l2c.bin', 'wb').write(struct.pack('<7i', *h) + struct.pack('<%df' % n, *range(n)))
