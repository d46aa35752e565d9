/* An independent plain-C oracle for c-project.md §2-§5, written from the spec:
 * float32 v1 language model (sequential sums), tokenizer.bin with the greedy
 * encoder, xorshift sampler, the generate loop and its printing. The Makefile
 * (legacy-tok) checks that ./mamba prints the same text for model B, greedy
 * and sampled. Handles only the float32 v1 files and a few thousand dims.
 *
 * Usage: ref_c_project model.bin tokenizer.bin prompt steps temperature topp seed */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int L, V, D, DI, R, S, K, TIED, RV;
static float *emb, *inp, *cw, *cb, *xp, *dtw, *dtb, *A, *Dp, *op, *nrm, *nf, *head;
static float *conv, *ssm;

static float *rd(FILE *f, size_t n) {
    float *p = malloc(n * 4);
    if (fread(p, 4, n, f) != n) { fprintf(stderr, "short\n"); exit(1); }
    return p;
}
static void mv(float *o, const float *w, const float *x, int rows, int cols) {
    for (int i = 0; i < rows; i++) { float v = 0; for (int j = 0; j < cols; j++) v += w[(size_t)i * cols + j] * x[j]; o[i] = v; }
}
static float silu(float x) { return x * (1.0f / (1.0f + expf(-x))); }
static float softplus(float x) { return logf(1.0f + expf(x)); }

static float *logits;
static float *fwd(int tok) {
    float x[4096], h[4096], xz[8192], xdb[1024], dt[4096], y[4096];
    memcpy(x, emb + (size_t)tok * D, D * 4);
    for (int l = 0; l < L; l++) {
        float ss = 0; for (int i = 0; i < D; i++) ss += x[i] * x[i];
        ss = 1.0f / sqrtf(ss / D + 1e-5f);
        for (int i = 0; i < D; i++) h[i] = x[i] * nrm[l * D + i] * ss;
        mv(xz, inp + (size_t)l * 2 * DI * D, h, 2 * DI, D);
        float *xs = xz, *z = xz + DI, *cs = conv + (size_t)l * DI * K, *st = ssm + (size_t)l * DI * S;
        for (int i = 0; i < DI; i++) {
            for (int k = 0; k < K - 1; k++) cs[i * K + k] = cs[i * K + k + 1];
            cs[i * K + K - 1] = xs[i];
            float v = 0; for (int k = 0; k < K; k++) v += cs[i * K + k] * cw[(size_t)l * DI * K + i * K + k];
            xs[i] = silu(v + cb[l * DI + i]);
        }
        mv(xdb, xp + (size_t)l * (R + 2 * S) * DI, xs, R + 2 * S, DI);
        for (int i = 0; i < DI; i++) {
            float v = 0; for (int r = 0; r < R; r++) v += dtw[(size_t)l * DI * R + i * R + r] * xdb[r];
            dt[i] = softplus(v + dtb[l * DI + i]);
        }
        float *B = xdb + R, *C = xdb + R + S;
        for (int i = 0; i < DI; i++) {
            float v = 0;
            for (int j = 0; j < S; j++) {
                int idx = i * S + j;
                st[idx] = st[idx] * expf(dt[i] * A[(size_t)l * DI * S + idx]) + xs[i] * dt[i] * B[j];
                v += st[idx] * C[j];
            }
            v += Dp[l * DI + i] * xs[i];
            y[i] = v * silu(z[i]);
        }
        mv(h, op + (size_t)l * D * DI, y, D, DI);
        for (int i = 0; i < D; i++) x[i] += h[i];
    }
    float ss = 0; for (int i = 0; i < D; i++) ss += x[i] * x[i];
    ss = 1.0f / sqrtf(ss / D + 1e-5f);
    for (int i = 0; i < D; i++) h[i] = x[i] * nf[i] * ss;
    mv(logits, head, h, RV, D);
    return logits;
}

/* tokenizer.bin */
static char **vocab; static int nv, maxlen;
typedef struct { char *s; int id; } TI;
static TI *sorted;
static int cmp(const void *a, const void *b) { return strcmp(((const TI *)a)->s, ((const TI *)b)->s); }
static int look(const char *s) { TI k = {(char *)s, 0}; TI *r = bsearch(&k, sorted, nv, sizeof(TI), cmp); return r ? r->id : -1; }
static int enc(const char *text, int *out) {
    int n = 0; char buf[8]; size_t bl = 0;
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80) bl = 0;
        buf[bl++] = *c; buf[bl] = 0;
        if ((c[1] & 0xC0) == 0x80 && bl < 4) continue;
        int id = look(buf);
        if (id != -1) out[n++] = id; else for (size_t i = 0; i < bl; i++) out[n++] = (unsigned char)buf[i] + 3;
        bl = 0;
    }
    char *cat = malloc(maxlen * 2 + 3);
    for (;;) {
        int at = -1, nid = -1;
        for (int i = 0; i + 1 < n; i++) {
            sprintf(cat, "%s%s", vocab[out[i]], vocab[out[i + 1]]);
            int id = look(cat);
            if (id != -1) { at = i; nid = id; break; }
        }
        if (at < 0) break;
        out[at] = nid; memmove(out + at + 1, out + at + 2, (n - at - 2) * sizeof(int)); n--;
    }
    free(cat);
    return n;
}
static unsigned char bytes[512];
static char *dec(int prev, int tok) {
    char *p = vocab[tok];
    if (prev == 0 && p[0] == ' ') p++;
    unsigned char b;
    if (sscanf(p, "<0x%02hhX>", &b) == 1) p = (char *)bytes + b * 2;
    return p;
}
static void sp(const char *p) {
    if (!p || !p[0]) return;
    if (!p[1] && !(isprint((unsigned char)p[0]) || isspace((unsigned char)p[0]))) return;
    printf("%s", p);
}

/* sampler */
static unsigned long long rng;
static float rf(void) {
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return ((unsigned)((rng * 0x2545F4914F6CDD1Dull) >> 32) >> 8) / 16777216.0f;
}
typedef struct { float p; int i; } PI;
static int pcmp(const void *a, const void *b) { float x = ((const PI *)a)->p, y = ((const PI *)b)->p; return x > y ? -1 : x < y ? 1 : 0; }
static PI *pix;
static int samp(float *l, int n, float t, float topp) {
    if (t == 0.0f) { int b = 0; for (int i = 1; i < n; i++) if (l[i] > l[b]) b = i; return b; }
    for (int i = 0; i < n; i++) l[i] /= t;
    float m = l[0]; for (int i = 1; i < n; i++) if (l[i] > m) m = l[i];
    float s = 0; for (int i = 0; i < n; i++) { l[i] = expf(l[i] - m); s += l[i]; }
    for (int i = 0; i < n; i++) l[i] /= s;
    float coin = rf();
    if (topp <= 0 || topp >= 1) { float c = 0; for (int i = 0; i < n; i++) { c += l[i]; if (coin < c) return i; } return n - 1; }
    int n0 = 0; float cut = (1.0f - topp) / (n - 1);
    for (int i = 0; i < n; i++) if (l[i] >= cut) { pix[n0].i = i; pix[n0].p = l[i]; n0++; }
    qsort(pix, n0, sizeof(PI), pcmp);
    float cum = 0; int last = n0 - 1;
    for (int i = 0; i < n0; i++) { cum += pix[i].p; if (cum > topp) { last = i; break; } }
    float r = coin * cum, c = 0;
    for (int i = 0; i <= last; i++) { c += pix[i].p; if (r < c) return pix[i].i; }
    return pix[last].i;
}

int main(int argc, char **argv) {
    if (argc < 8) return 2;
    FILE *f = fopen(argv[1], "rb");
    int hdr[64]; if (fread(hdr, 4, 64, f) != 64) return 1;
    L = hdr[2]; V = hdr[3]; D = hdr[4]; DI = hdr[5]; R = hdr[6]; S = hdr[7]; K = hdr[8]; TIED = hdr[9];
    RV = (V + 7) / 8 * 8;
    emb = rd(f, (size_t)RV * D); inp = rd(f, (size_t)L * 2 * DI * D); cw = rd(f, (size_t)L * DI * K); cb = rd(f, (size_t)L * DI);
    xp = rd(f, (size_t)L * (R + 2 * S) * DI); dtw = rd(f, (size_t)L * DI * R); dtb = rd(f, (size_t)L * DI);
    A = rd(f, (size_t)L * DI * S); Dp = rd(f, (size_t)L * DI); op = rd(f, (size_t)L * D * DI); nrm = rd(f, (size_t)L * D);
    nf = rd(f, D); head = TIED ? emb : rd(f, (size_t)RV * D);
    fclose(f);
    conv = calloc((size_t)L * DI * K, 4); ssm = calloc((size_t)L * DI * S, 4); logits = malloc(RV * 4);
    for (int i = 0; i < 256; i++) { bytes[2 * i] = i; bytes[2 * i + 1] = 0; }
    f = fopen(argv[2], "rb");
    int th[4]; if (fread(th, 4, 4, f) != 4) return 1;
    nv = th[2]; maxlen = th[3]; vocab = malloc(nv * sizeof(char *)); sorted = malloc(nv * sizeof(TI));
    for (int i = 0; i < nv; i++) {
        int len; if (fread(&len, 4, 1, f) != 1) return 1;
        vocab[i] = malloc(len + 1); if (len && fread(vocab[i], len, 1, f) != 1) return 1; vocab[i][len] = 0;
        sorted[i].s = vocab[i]; sorted[i].id = i;
    }
    fclose(f);
    qsort(sorted, nv, sizeof(TI), cmp);
    pix = malloc(V * sizeof(PI));
    char *prompt = argv[3]; int steps = atoi(argv[4]); float t = atof(argv[5]), topp = atof(argv[6]); rng = atoi(argv[7]);
    int *toks = malloc((strlen(prompt) + 3) * sizeof(int)); int nt = enc(prompt, toks);
    if (nt < 1) return 1;
    if (nt > 1) sp(dec(0, toks[0]));
    int tok = toks[0], next, pos = 0;
    while (pos < steps) {
        float *lg = fwd(tok);
        next = pos < nt - 1 ? toks[pos + 1] : samp(lg, V, t, topp);
        pos++;
        if (next == 0) break;
        sp(dec(tok, next));
        tok = next;
    }
    printf("\n");
    return 0;
}
