/* qblind arch: the architecture presets, their text and their layer
 * tables; a text file of one's own checked the way a spec's is. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/arch.h"
#include "core/file.h"
#include "core/model.h"
#include "jobs/cost.h"

static const char usage[] =
    "usage: qblind arch [NAME | --file FILE] [--input CxHxW] [--classes N]\n"
    "Without arguments: list the architecture presets. With NAME: print its\n"
    "text, one layer per line (the form a spec's `architectures:` uses; copy\n"
    "and edit it). With --input: build it for that input shape and print the\n"
    "layer table (inputs, output shape, parameters, multiply-adds).\n"
    "  --file FILE      an architecture text of your own (checked; errors\n"
    "                   name FILE:line:column)\n"
    "  --input CxHxW    input shape, e.g. 3x32x32 [default with NAME: none]\n"
    "  --classes N      [10] outputs of `linear classes`\n"
    "  -h, --help       this help\n";

static void print_table(const qb_model *m)
{
    printf("%4s  %-9s %6s %6s  %-13s %11s %13s\n", "#", "layer", "in", "in2", "output",
           "params", "mult-adds");
    double macs = 0.0;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        char in2[16] = "", shape[32];
        if (l->src2 >= 0) snprintf(in2, sizeof in2, "%d", l->src2 - 1);
        snprintf(shape, sizeof shape, "%dx%dx%d", l->out_c, l->out_h, l->out_w);
        char src[16];
        if (l->src == 0) snprintf(src, sizeof src, "input");
        else snprintf(src, sizeof src, "%d", l->src - 1);
        macs += qb_cost_layer_macs(l);
        printf("%4d  %-9s %6s %6s  %-13s %11zu %13.0f\n", i, qb_layer_kind_name(l->kind), src,
               in2, shape, l->w_len + l->b_len, qb_cost_layer_macs(l));
    }
    printf("%zu trained parameters, %zu running-statistic values, %.1f M multiply-adds per "
           "sample (forward)\n", m->n_train, m->n_params - m->n_train, macs / 1e6);
}

int qb_cmd_arch(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"file", required_argument, NULL, 'f'},
                                         {"input", required_argument, NULL, 'i'},
                                         {"classes", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL, *input = NULL;
    int classes = 10, c;
    qb_error err;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return 0;
        case 'f': file = optarg; break;
        case 'i': input = optarg; break;
        case 'c':
            if (qb_cli_int("--classes", optarg, 2, 256, &classes, &err))
                return qb_cli_usage_error("arch", &err);
            break;
        default: qb_cli_option_error(c, argv, &err); return qb_cli_usage_error("arch", &err);
        }
    }
    if (optind + (file ? 0 : 1) < argc) {
        QB_FAIL(&err, "unexpected argument \"%s\"", argv[optind + (file ? 0 : 1)]);
        return qb_cli_usage_error("arch", &err);
    }
    const char *name = optind < argc ? argv[optind] : NULL;
    if (!name && !file) {
        for (int i = 0; qb_arch_names[i]; i++) printf("%s\n", qb_arch_names[i]);
        return 0;
    }
    int ic = 0, ih = 0, iw = 0;
    if (input) {
        char tail;
        if (sscanf(input, "%dx%dx%d%c", &ic, &ih, &iw, &tail) != 3 || ic < 1 || ic > 64 ||
            ih < 1 || ih > 4096 || iw < 1 || iw > 4096) {
            QB_FAIL(&err, "--input: expected CxHxW (C in [1, 64], H and W in [1, 4096]), got \"%s\"",
                    input);
            return qb_cli_usage_error("arch", &err);
        }
    }
    char *text = NULL;
    if (file) {
        uint8_t *buf;
        size_t len;
        if (qb_file_read_all(file, QB_ARCH_TEXT_MAX, &buf, &len, &err)) {
            qb_error_print(&err);
            return 1;
        }
        text = malloc(len + 1);
        if (!text) return 1;
        memcpy(text, buf, len);
        text[len] = '\0';
        free(buf);
        if (strlen(text) != len) {
            fprintf(stderr, "qblind: %s: contains a NUL byte\n", file);
            free(text);
            return 1;
        }
        name = file;
    } else if (!qb_arch_text(name)) {
        QB_FAIL(&err, "unknown architecture \"%s\"; `qblind arch` lists the presets", name);
        qb_error_print(&err);
        return 1;
    }
    const char *t = text ? text : qb_arch_text(name);
    /* without --input, a file is still checked on a generous input */
    int pc = input ? ic : 3, ph = input ? ih : 224, pw = input ? iw : 224;
    qb_model m;
    qb_arch_where w;
    int rc = 0;
    if (qb_arch_plan_text(&m, "arch", t, pc, ph, pw, classes, &w, &err)) {
        if (w.line >= 0)
            fprintf(stderr, "qblind: %s:%d:%d: %s\n", file ? file : name, w.line + 1, w.col + 1,
                    err.msg);
        else
            fprintf(stderr, "qblind: %s%s%s: %s\n", file ? file : name,
                    input ? " on input " : "", input ? input : "", err.msg);
        rc = 1;
    } else if (input) {
        print_table(&m);
    } else {
        fputs(t, stdout);
    }
    free(text);
    return rc;
}
