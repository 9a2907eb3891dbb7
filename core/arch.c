#include "core/arch.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/xalloc.h"

/* ---- presets ------------------------------------------------------------- */

/* LeNet-5-like, (1,28,28): conv5 (16,24,24), pool (16,12,12), conv5
 * (32,8,8), pool (32,4,4), 512 -> 128 -> classes. */
static const char lenet_text[] =
    "conv 16 k=5\n"
    "relu\n"
    "maxpool 2\n"
    "conv 32 k=5\n"
    "relu\n"
    "maxpool 2\n"
    "flatten\n"
    "linear 128\n"
    "relu\n"
    "linear classes\n";

/* VGG-like, (3,32,32): [conv3 32, conv3 32, pool] (32,16,16), [conv3 64,
 * conv3 64, pool] (64,8,8), 4096 -> 256 -> classes. */
static const char cnn_small_text[] =
    "conv 32 k=3 pad=1\n"
    "relu\n"
    "conv 32 k=3 pad=1\n"
    "relu\n"
    "maxpool 2\n"
    "conv 64 k=3 pad=1\n"
    "relu\n"
    "conv 64 k=3 pad=1\n"
    "relu\n"
    "maxpool 2\n"
    "flatten\n"
    "linear 256\n"
    "relu\n"
    "linear classes\n";

/* He et al. 2016's CIFAR ResNet-20: a 3x3 stem of 16 channels, three
 * stages of three basic blocks (16, 32, 64 channels; the first block of
 * the second and third stage halves the resolution), each block
 * conv-bn-relu-conv-bn plus the shortcut, ReLU after the addition; where
 * the shape changes the shortcut is a strided 1x1 convolution with batch
 * norm (the paper's option B); global average pool, one linear layer.
 * ~0.27M parameters. */
static const char resnet20_text[] =
    "conv 16 k=3 pad=1 bias=0\n"
    "bn\n"
    "relu as=stem\n"
    "conv 16 k=3 stride=1 pad=1 bias=0 in=stem\n"
    "bn\n"
    "relu\n"
    "conv 16 k=3 pad=1 bias=0\n"
    "bn as=b1body\n"
    "add stem\n"
    "relu as=b1\n"
    "conv 16 k=3 stride=1 pad=1 bias=0 in=b1\n"
    "bn\n"
    "relu\n"
    "conv 16 k=3 pad=1 bias=0\n"
    "bn as=b2body\n"
    "add b1\n"
    "relu as=b2\n"
    "conv 16 k=3 stride=1 pad=1 bias=0 in=b2\n"
    "bn\n"
    "relu\n"
    "conv 16 k=3 pad=1 bias=0\n"
    "bn as=b3body\n"
    "add b2\n"
    "relu as=b3\n"
    "conv 32 k=3 stride=2 pad=1 bias=0 in=b3\n"
    "bn\n"
    "relu\n"
    "conv 32 k=3 pad=1 bias=0\n"
    "bn as=b4body\n"
    "conv 32 k=1 stride=2 bias=0 in=b3\n"
    "bn\n"
    "add b4body\n"
    "relu as=b4\n"
    "conv 32 k=3 stride=1 pad=1 bias=0 in=b4\n"
    "bn\n"
    "relu\n"
    "conv 32 k=3 pad=1 bias=0\n"
    "bn as=b5body\n"
    "add b4\n"
    "relu as=b5\n"
    "conv 32 k=3 stride=1 pad=1 bias=0 in=b5\n"
    "bn\n"
    "relu\n"
    "conv 32 k=3 pad=1 bias=0\n"
    "bn as=b6body\n"
    "add b5\n"
    "relu as=b6\n"
    "conv 64 k=3 stride=2 pad=1 bias=0 in=b6\n"
    "bn\n"
    "relu\n"
    "conv 64 k=3 pad=1 bias=0\n"
    "bn as=b7body\n"
    "conv 64 k=1 stride=2 bias=0 in=b6\n"
    "bn\n"
    "add b7body\n"
    "relu as=b7\n"
    "conv 64 k=3 stride=1 pad=1 bias=0 in=b7\n"
    "bn\n"
    "relu\n"
    "conv 64 k=3 pad=1 bias=0\n"
    "bn as=b8body\n"
    "add b7\n"
    "relu as=b8\n"
    "conv 64 k=3 stride=1 pad=1 bias=0 in=b8\n"
    "bn\n"
    "relu\n"
    "conv 64 k=3 pad=1 bias=0\n"
    "bn as=b9body\n"
    "add b8\n"
    "relu as=b9\n"
    "avgpool\n"
    "flatten\n"
    "linear classes\n";

/* BackdoorBench's PreActResNet18 (models/preact_resnet.py): a 3x3 stem of
 * 64 channels without batch norm, four stages of two pre-activation
 * blocks (64, 128, 256, 512 channels; the first block of stages 2-4
 * strided), each block bn-relu, then conv-bn-relu-conv, plus the
 * shortcut: the block input, or a strided 1x1 convolution of the
 * pre-activation where the shape changes; no batch norm after the last
 * block; adaptive (global) average pool, one linear layer. 11.2M
 * parameters. */
static const char preact_resnet18_text[] =
    "conv 64 k=3 pad=1 bias=0 as=stem\n"
    "bn in=stem\n"
    "relu as=b1pre\n"
    "conv 64 k=3 stride=1 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 64 k=3 pad=1 bias=0 as=b1body\n"
    "add stem as=b1\n"
    "bn in=b1\n"
    "relu as=b2pre\n"
    "conv 64 k=3 stride=1 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 64 k=3 pad=1 bias=0 as=b2body\n"
    "add b1 as=b2\n"
    "bn in=b2\n"
    "relu as=b3pre\n"
    "conv 128 k=3 stride=2 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 128 k=3 pad=1 bias=0 as=b3body\n"
    "conv 128 k=1 stride=2 bias=0 in=b3pre\n"
    "add b3body as=b3\n"
    "bn in=b3\n"
    "relu as=b4pre\n"
    "conv 128 k=3 stride=1 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 128 k=3 pad=1 bias=0 as=b4body\n"
    "add b3 as=b4\n"
    "bn in=b4\n"
    "relu as=b5pre\n"
    "conv 256 k=3 stride=2 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 256 k=3 pad=1 bias=0 as=b5body\n"
    "conv 256 k=1 stride=2 bias=0 in=b5pre\n"
    "add b5body as=b5\n"
    "bn in=b5\n"
    "relu as=b6pre\n"
    "conv 256 k=3 stride=1 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 256 k=3 pad=1 bias=0 as=b6body\n"
    "add b5 as=b6\n"
    "bn in=b6\n"
    "relu as=b7pre\n"
    "conv 512 k=3 stride=2 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 512 k=3 pad=1 bias=0 as=b7body\n"
    "conv 512 k=1 stride=2 bias=0 in=b7pre\n"
    "add b7body as=b7\n"
    "bn in=b7\n"
    "relu as=b8pre\n"
    "conv 512 k=3 stride=1 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 512 k=3 pad=1 bias=0 as=b8body\n"
    "add b7 as=b8\n"
    "avgpool\n"
    "flatten\n"
    "linear classes\n";

/* VGG-11 with batch norm as BackdoorBench defines it (models/vgg.py):
 * conv3-bn-relu blocks of 64, M, 128, M, 256, 256, M, 512, 512, M, 512,
 * 512, M (M = 2x2 max pool), one linear layer on the 512 features; needs
 * inputs of at least 32x32. */
static const char vgg11_bn_text[] =
    "conv 64 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "maxpool 2\n"
    "conv 128 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "maxpool 2\n"
    "conv 256 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "conv 256 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "maxpool 2\n"
    "conv 512 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "conv 512 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "maxpool 2\n"
    "conv 512 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "conv 512 k=3 pad=1\n"
    "bn\n"
    "relu\n"
    "maxpool 2\n"
    "flatten\n"
    "linear classes\n";

typedef struct arch_entry {
    const char *name;
    const char *text;
} arch_entry;

static const arch_entry presets[] = {
    {"lenet", lenet_text},
    {"cnn-small", cnn_small_text},
    {"resnet20", resnet20_text},
    {"preact-resnet18", preact_resnet18_text},
    {"vgg11-bn", vgg11_bn_text},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

const char *const qb_arch_names[] = {"lenet", "cnn-small", "resnet20", "preact-resnet18",
                                     "vgg11-bn", NULL};

#define QB_ARCH_DECLARED_MAX 64
static arch_entry declared[QB_ARCH_DECLARED_MAX];
static int n_declared;

int qb_arch_is_preset(const char *name)
{
    for (int i = 0; i < N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0) return 1;
    return 0;
}

const char *qb_arch_text(const char *name)
{
    for (int i = 0; i < N_PRESETS; i++)
        if (strcmp(presets[i].name, name) == 0) return presets[i].text;
    for (int i = 0; i < n_declared; i++)
        if (strcmp(declared[i].name, name) == 0) return declared[i].text;
    return NULL;
}

int qb_arch_declare(const char *name, const char *text, qb_error *err)
{
    const char *have = qb_arch_text(name);
    if (have) {
        if (strcmp(have, text) == 0) return 0;
        return QB_FAIL(err, "architecture \"%s\" is %s with different layers", name,
                       qb_arch_is_preset(name) ? "a preset" : "already declared");
    }
    size_t nl = strlen(name);
    if (nl == 0 || nl >= QB_ARCH_NAME_MAX)
        return QB_FAIL(err, "architecture name \"%.40s\" must have 1 to %d characters", name,
                       QB_ARCH_NAME_MAX - 1);
    for (size_t i = 0; i < nl; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' &&
            name[i] != '.')
            return QB_FAIL(err, "architecture name \"%s\": character %zu is not a letter, digit, "
                           "'-', '_' or '.'", name, i + 1);
    if (strlen(text) > QB_ARCH_TEXT_MAX)
        return QB_FAIL(err, "architecture \"%s\" is longer than %d bytes", name,
                       QB_ARCH_TEXT_MAX);
    if (n_declared == QB_ARCH_DECLARED_MAX)
        return QB_FAIL(err, "more than %d architectures declared", QB_ARCH_DECLARED_MAX);
    declared[n_declared].name = xstrdup(name);
    declared[n_declared].text = xstrdup(text);
    n_declared++;
    return 0;
}

/* ---- building ------------------------------------------------------------ */

#define NAME_MAX_LEN 32

typedef struct builder {
    qb_model *m;
    int shape[QB_MAX_LAYERS + 1][3]; /* (C, H, W) of every node */
    int uses[QB_MAX_LAYERS + 1];
    char names[QB_MAX_LAYERS + 1][NAME_MAX_LEN]; /* "" = unnamed */
    int node_line[QB_MAX_LAYERS + 1];            /* the line that made each node */
    qb_arch_where *where;
    qb_error *err;
    int line;
} builder;

/* One token of a line: [p, p + n) at column col. */
typedef struct token {
    const char *p;
    int n, col;
} token;

__attribute__((format(printf, 3, 4))) static int fail_at(builder *b, int col,
                                                          const char *fmt, ...)
{
    if (b->where) {
        b->where->line = b->line;
        b->where->col = col;
    }
    char msg[sizeof b->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return QB_FAIL(b->err, "%s", msg);
}

static int tok_is(const token *t, const char *s)
{
    return (size_t)t->n == strlen(s) && memcmp(t->p, s, (size_t)t->n) == 0;
}

static void tok_str(const token *t, char *out, size_t cap)
{
    size_t n = (size_t)t->n < cap - 1 ? (size_t)t->n : cap - 1;
    memcpy(out, t->p, n);
    out[n] = '\0';
}

/* A positive integer token in [lo, hi], else an error at its column. */
static int tok_int(builder *b, const token *t, const char *what, int lo, int hi, int *out)
{
    char s[24];
    tok_str(t, s, sizeof s);
    char *end;
    long v = t->n > 0 && t->n < 12 ? strtol(s, &end, 10) : 0;
    if (t->n == 0 || t->n >= 12 || *end != '\0' || !isdigit((unsigned char)s[0]) || v < lo ||
        v > hi) {
        char range[64];
        snprintf(range, sizeof range, "an integer in [%d, %d]", lo, hi);
        return fail_at(b, t->col, "%s must be %s", what, range);
    }
    *out = (int)v;
    return 0;
}

/* The node a name refers to. */
static int lookup(builder *b, const token *t, int *node)
{
    char s[NAME_MAX_LEN + 8];
    tok_str(t, s, sizeof s);
    if (strcmp(s, "input") == 0) {
        *node = 0;
        return 0;
    }
    for (int i = b->m->n_layers; i >= 1; i--)
        if (strcmp(b->names[i], s) == 0) {
            *node = i;
            return 0;
        }
    return fail_at(b, t->col,
                   "no earlier layer is named \"%s\" (a name is used after the line that "
                   "defines it with as=%s: layers are in order, so the graph has no cycle)",
                   s, s);
}

static qb_layer *push(builder *b, qb_layer_kind kind, int src, int col)
{
    qb_model *m = b->m;
    if (m->n_layers >= QB_MAX_LAYERS) {
        fail_at(b, col, "more than %d layers", QB_MAX_LAYERS);
        return NULL;
    }
    qb_layer *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->src = src;
    l->src2 = -1;
    b->node_line[m->n_layers] = b->line;
    l->in_c = b->shape[src][0];
    l->in_h = b->shape[src][1];
    l->in_w = b->shape[src][2];
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    b->uses[src]++;
    return l;
}

static void add_params(qb_model *m, qb_layer *l, size_t w_len, size_t b_len)
{
    l->w_off = m->n_params;
    l->w_len = w_len;
    l->b_off = l->w_off + w_len;
    l->b_len = b_len;
    m->n_params = l->b_off + b_len;
}

typedef struct options {
    int k, stride, pad, bias, cin;
    int have_stride;
    token in, as;
    int have_in, have_as;
} options;

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* The words of a line up to a comment: tok (16), *nt of them. */
static int tokenize(builder *b, const char *text, int len, token *tok, int *nt)
{
    *nt = 0;
    for (int i = 0; i < len;) {
        if (text[i] == '#') break;
        if (isspace((unsigned char)text[i])) {
            i++;
            continue;
        }
        int j = i;
        while (j < len && !isspace((unsigned char)text[j]) && text[j] != '#') j++;
        if (*nt == 16) return fail_at(b, i, "too many words on one line");
        tok[(*nt)++] = (token){text + i, j - i, i};
        i = j;
    }
    return 0;
}

/* The words after the operation: key=value options into *o, the others
 * into pos (4), *npos of them. */
static int parse_options(builder *b, const token *tok, int nt, options *o, token *pos, int *npos)
{
    *o = (options){.k = 3, .stride = 1, .pad = 0, .bias = 1, .cin = -1};
    *npos = 0;
    for (int i = 1; i < nt; i++) {
        const char *eq = memchr(tok[i].p, '=', (size_t)tok[i].n);
        if (!eq) {
            if (*npos == 4) return fail_at(b, tok[i].col, "too many arguments");
            pos[(*npos)++] = tok[i];
            continue;
        }
        token key = {tok[i].p, (int)(eq - tok[i].p), tok[i].col};
        token val = {eq + 1, tok[i].n - key.n - 1, tok[i].col + key.n + 1};
        int rc = 0;
        if (tok_is(&key, "k")) {
            rc = tok_int(b, &val, "k", 1, 15, &o->k);
        } else if (tok_is(&key, "stride")) {
            rc = tok_int(b, &val, "stride", 1, 15, &o->stride);
            o->have_stride = 1;
        } else if (tok_is(&key, "pad")) {
            rc = tok_int(b, &val, "pad", 0, 15, &o->pad);
        } else if (tok_is(&key, "bias")) {
            rc = tok_int(b, &val, "bias", 0, 1, &o->bias);
        } else if (tok_is(&key, "cin")) {
            rc = tok_int(b, &val, "cin", 1, 65536, &o->cin);
        } else if (tok_is(&key, "in")) {
            o->in = val;
            o->have_in = 1;
        } else if (tok_is(&key, "as")) {
            o->as = val;
            o->have_as = 1;
        } else {
            char k[24];
            tok_str(&key, k, sizeof k);
            return fail_at(b, key.col,
                           "unknown option \"%s\"; expected k=, stride=, pad=, bias=, cin=, in= "
                           "or as=", k);
        }
        if (rc) return rc;
    }
    return 0;
}

/* The operation's kind and how many positional arguments it takes. */
static int op_kind(builder *b, const token *op, qb_layer_kind *kind, int *want)
{
    static const struct {
        const char *name;
        qb_layer_kind kind;
        int args;
    } ops[] = {{"conv", QB_LAYER_CONV2D, 1},  {"bn", QB_LAYER_BATCHNORM, 0},
               {"relu", QB_LAYER_RELU, 0},    {"maxpool", QB_LAYER_MAXPOOL, 1},
               {"avgpool", QB_LAYER_AVGPOOL, 0}, {"flatten", QB_LAYER_FLATTEN, 0},
               {"linear", QB_LAYER_LINEAR, 1}, {"add", QB_LAYER_ADD, 1}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (tok_is(op, ops[i].name)) {
            *kind = ops[i].kind;
            *want = ops[i].args;
            return 0;
        }
    char o2[24];
    tok_str(op, o2, sizeof o2);
    return fail_at(b, op->col,
                   "unknown layer \"%s\"; expected one of: conv, bn, relu, maxpool, avgpool, "
                   "flatten, linear, add", o2);
}

static const char *op_usage(qb_layer_kind kind)
{
    switch (kind) {
    case QB_LAYER_CONV2D: return "conv OUT [k=K] [stride=S] [pad=P] [bias=0|1] [cin=C]";
    case QB_LAYER_MAXPOOL: return "maxpool K [stride=S]";
    case QB_LAYER_LINEAR: return "linear OUT (a number or classes)";
    case QB_LAYER_ADD: return "add NAME";
    case QB_LAYER_BATCHNORM: return "bn";
    case QB_LAYER_RELU: return "relu";
    case QB_LAYER_AVGPOOL: return "avgpool";
    case QB_LAYER_FLATTEN: return "flatten";
    }
    return "?";
}

/* Output shape and parameters of the new layer l (input shape s) from its
 * arguments and options. */
static int shape_layer(builder *b, qb_layer *l, const token *op, const token *pos,
                       const options *o, const int *s)
{
    qb_model *m = b->m;
    switch (l->kind) {
    case QB_LAYER_CONV2D: {
        int oc;
        if (tok_int(b, &pos[0], "conv OUT", 1, 65536, &oc)) return -1;
        if (o->cin >= 0 && o->cin != s[0])
            return fail_at(b, op->col, "conv expects cin=%d input channels but its input has %d",
                           o->cin, s[0]);
        l->k = o->k;
        l->stride = o->stride;
        l->pad = o->pad;
        l->out_c = oc;
        if (s[1] + 2 * o->pad < o->k || s[2] + 2 * o->pad < o->k) {
            l->out_h = l->out_w = 0;
        } else {
            l->out_h = (s[1] + 2 * o->pad - o->k) / o->stride + 1;
            l->out_w = (s[2] + 2 * o->pad - o->k) / o->stride + 1;
        }
        add_params(m, l, (size_t)oc * s[0] * o->k * o->k, o->bias ? (size_t)oc : 0);
        return 0;
    }
    case QB_LAYER_BATCHNORM:
        add_params(m, l, (size_t)s[0], (size_t)s[0]);
        l->s_len = 2 * (size_t)s[0];
        return 0;
    case QB_LAYER_MAXPOOL: {
        int k;
        if (tok_int(b, &pos[0], "maxpool K", 1, 15, &k)) return -1;
        l->k = k;
        l->stride = o->have_stride ? o->stride : k;
        l->out_h = s[1] >= k ? (s[1] - k) / l->stride + 1 : 0;
        l->out_w = s[2] >= k ? (s[2] - k) / l->stride + 1 : 0;
        return 0;
    }
    case QB_LAYER_AVGPOOL:
        l->k = s[1];
        l->out_h = l->out_w = 1;
        return 0;
    case QB_LAYER_FLATTEN:
        l->out_c = s[0] * s[1] * s[2];
        l->out_h = l->out_w = 1;
        return 0;
    case QB_LAYER_LINEAR: {
        int out;
        if (tok_is(&pos[0], "classes")) out = m->classes;
        else if (tok_int(b, &pos[0], "linear OUT", 1, 1 << 20, &out)) return -1;
        l->in_c = s[0] * s[1] * s[2];
        l->in_h = l->in_w = 1;
        l->out_c = out;
        l->out_h = l->out_w = 1;
        add_params(m, l, (size_t)out * l->in_c, (size_t)out);
        return 0;
    }
    case QB_LAYER_ADD: {
        int other = 0;
        if (lookup(b, &pos[0], &other)) return -1;
        const int *t = b->shape[other];
        if (t[0] != s[0] || t[1] != s[1] || t[2] != s[2])
            return fail_at(b, pos[0].col, "add: shapes differ: the input is %dx%dx%d, the added "
                           "layer's output is %dx%dx%d", s[0], s[1], s[2], t[0], t[1], t[2]);
        if (other == l->src) return fail_at(b, pos[0].col, "add: adds its input to itself");
        l->src2 = other;
        b->uses[other]++;
        return 0;
    }
    case QB_LAYER_RELU:
        return 0;
    }
    return 0;
}

/* as=NAME on the line that made node `node`. */
static int name_output(builder *b, const options *o, int node)
{
    if (!o->have_as) return 0;
    char nm[NAME_MAX_LEN + 8];
    tok_str(&o->as, nm, sizeof nm);
    int ok = o->as.n >= 1 && o->as.n < NAME_MAX_LEN && strcmp(nm, "input") != 0;
    for (int i = 0; ok && i < o->as.n; i++) ok = is_name_char(o->as.p[i]);
    if (!ok)
        return fail_at(b, o->as.col, "as=%s: a name has 1-31 letters, digits, '-', '_' or '.' "
                       "and is not \"input\"", nm);
    for (int i = 1; i < node; i++)
        if (strcmp(b->names[i], nm) == 0)
            return fail_at(b, o->as.col, "as=%s: the name is already used", nm);
    memcpy(b->names[node], nm, strlen(nm) + 1);
    return 0;
}

/* One line: op, positional arguments, key=value options. */
static int build_line(builder *b, const char *text, int len)
{
    token tok[16], pos[4];
    int nt, npos, want = 0;
    options o;
    qb_layer_kind kind = QB_LAYER_RELU;
    if (tokenize(b, text, len, tok, &nt)) return -1;
    if (nt == 0) return 0;
    const token *op = &tok[0];
    if (parse_options(b, tok, nt, &o, pos, &npos) || op_kind(b, op, &kind, &want)) return -1;
    qb_model *m = b->m;
    int src = m->n_layers; /* the previous line's output */
    if (o.have_in && lookup(b, &o.in, &src)) return -1;
    const int *s = b->shape[src];
    char opname[16];
    tok_str(op, opname, sizeof opname);
    if (npos != want)
        return fail_at(b, npos > want ? pos[want].col : op->col + op->n,
                       "%s: wrong number of arguments; usage: %s", opname, op_usage(kind));
    int spatial = kind == QB_LAYER_CONV2D || kind == QB_LAYER_BATCHNORM ||
                  kind == QB_LAYER_MAXPOOL || kind == QB_LAYER_AVGPOOL;
    if (spatial && s[1] == 1 && s[2] == 1 && src > 0 &&
        (m->layers[src - 1].kind == QB_LAYER_FLATTEN || m->layers[src - 1].kind == QB_LAYER_LINEAR))
        return fail_at(b, op->col, "%s needs an image (C, H, W) input, but its input is a flat "
                       "vector", opname);
    qb_layer *l = push(b, kind, src, op->col);
    if (!l || shape_layer(b, l, op, pos, &o, s)) return -1;
    if (l->out_h < 1 || l->out_w < 1)
        return fail_at(b, op->col, "%s on a %dx%dx%d input has no output (the input is too small)",
                       opname, s[0], s[1], s[2]);
    int node = m->n_layers;
    b->shape[node][0] = l->out_c;
    b->shape[node][1] = l->out_h;
    b->shape[node][2] = l->out_w;
    if (qb_layer_in_size(l) > QB_MAX_ACTIVATION || qb_layer_out_size(l) > QB_MAX_ACTIVATION)
        return fail_at(b, op->col, "%s: activations exceed %zu floats per sample", opname,
                       (size_t)QB_MAX_ACTIVATION);
    return name_output(b, &o, node);
}

int qb_arch_plan_lines(qb_model *m, const char *name, const char *const *lines, int n, int c,
                       int h, int w, int classes, qb_arch_where *where, qb_error *err)
{
    memset(m, 0, sizeof *m);
    if (where) where->line = where->col = -1;
    if (c < 1 || h < 1 || w < 1 || classes < 2 || classes > 256)
        return QB_FAIL(err, "invalid model input %dx%dx%d with %d classes", c, h, w, classes);
    if (strlen(name) >= sizeof m->arch)
        return QB_FAIL(err, "architecture name \"%.40s...\" is too long", name);
    if (n > QB_ARCH_LINES_MAX)
        return QB_FAIL(err, "architecture %s has %d lines; the limit is %d", name, n,
                       QB_ARCH_LINES_MAX);
    snprintf(m->arch, sizeof m->arch, "%s", name);
    m->in_c = c;
    m->in_h = h;
    m->in_w = w;
    m->classes = classes;
    builder *b = xcalloc(1, sizeof *b);
    b->m = m;
    b->shape[0][0] = c;
    b->shape[0][1] = h;
    b->shape[0][2] = w;
    b->where = where;
    b->err = err;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        b->line = i;
        size_t len = strlen(lines[i]);
        if (len > QB_ARCH_LINE_MAX)
            rc = fail_at(b, QB_ARCH_LINE_MAX, "line longer than %d bytes", QB_ARCH_LINE_MAX);
        else
            rc = build_line(b, lines[i], (int)len);
    }
    if (rc == 0 && m->n_layers == 0)
        rc = QB_FAIL(err, "architecture %s has no layers", name);
    for (int node = 1; rc == 0 && node < m->n_layers; node++)
        if (b->uses[node] == 0) {
            rc = QB_FAIL(err, "architecture %s: the output of layer %d (%s) is never used", name,
                         node - 1, qb_layer_kind_name(m->layers[node - 1].kind));
            if (where) { /* the line of the unused layer, at its operation */
                where->line = b->node_line[node];
                where->col = (int)strspn(lines[where->line], " \t");
            }
        }
    if (rc == 0) {
        const qb_layer *last = &m->layers[m->n_layers - 1];
        if (qb_layer_out_size(last) != (size_t)classes)
            rc = QB_FAIL(err, "architecture %s ends with %d outputs, not the %d classes (end with "
                         "`linear classes`)", name, (int)qb_layer_out_size(last), classes);
    }
    free(b);
    if (rc) {
        memset(m, 0, sizeof *m);
        return -1;
    }
    /* The running statistics of batch norms: an untrained tail. */
    m->n_train = m->n_params;
    for (int i = 0; i < m->n_layers; i++) {
        qb_layer *l = &m->layers[i];
        if (l->kind != QB_LAYER_BATCHNORM) continue;
        l->s_off = m->n_params;
        m->n_params += l->s_len;
    }
    return 0;
}

int qb_arch_plan_text(qb_model *m, const char *name, const char *text, int c, int h, int w,
                      int classes, qb_arch_where *where, qb_error *err)
{
    const char *lines[QB_ARCH_LINES_MAX];
    char *copy = xstrdup(text);
    int n = 0;
    for (char *p = copy; *p;) {
        char *nl = strchr(p, '\n');
        if (n == QB_ARCH_LINES_MAX) {
            free(copy);
            memset(m, 0, sizeof *m);
            return QB_FAIL(err, "architecture %s has more than %d lines", name, QB_ARCH_LINES_MAX);
        }
        lines[n++] = p;
        if (!nl) break;
        *nl = '\0';
        p = nl + 1;
    }
    int rc = qb_arch_plan_lines(m, name, lines, n, c, h, w, classes, where, err);
    free(copy);
    return rc;
}
