/* ICL task loaders and generators: the bundled files load with the right counts and
 * labels (counted here independently, line by line or with a trivial scan), generated
 * rules hold for every item and are reproducible from the seed, and bad input gives an
 * error naming the file, line or item, and field. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "icl/ll_icl_task.h"
#include "ll_test_util.h"

static int ll_count_lines(const char *path, const char *must_contain) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    char line[1 << 16];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (line[0] != '\n' && (!must_contain || strstr(line, must_contain))) n++;
    fclose(f);
    return n;
}

static const char *ll_root(void) {
    const char *r = ll_test_shared_assets();
    if (!r) cr_skip_test("../shared/assets not found: bundled ICL data sets not tested");
    return r;
}

Test(icl_tasks, function_vector_list) {
    const char *root = ll_root();
    ll_icl_task_opts o = {.data_root = root};
    ll_icl_task *t;
    cr_assert_eq(ll_icl_task_load("antonym", &o, &t), LL_OK, "%s", ll_last_error());
    char p[4096];
    snprintf(p, sizeof p, "%s/icl-function-vectors/abstractive/antonym.json", root);
    cr_assert_eq(t->n, ll_count_lines(p, "\"input\":"));
    cr_assert_str_eq(t->input[0], "flawed");
    cr_assert_str_eq(t->output[0], "perfect");
    cr_assert(!t->classification);
    for (int i = 0; i < t->n; i++) cr_assert_str_eq(t->classes[t->cls[i]], t->output[i]);
    ll_icl_task_free(t);
    cr_assert_eq(ll_icl_task_load("animal_v_object_3", &o, &t), LL_OK, "%s", ll_last_error());
    cr_assert_str_eq(t->input[0], "paintbrush, paper, mantis");
    cr_assert_str_eq(t->output[0], "mantis");
    ll_icl_task_free(t);
}

Test(icl_tasks, task_vector_object) {
    const char *root = ll_root();
    ll_icl_task_opts o = {.data_root = root};
    ll_icl_task *t;
    cr_assert_eq(ll_icl_task_load("country_capital", &o, &t), LL_OK, "%s", ll_last_error());
    char p[4096];
    snprintf(p, sizeof p, "%s/icl-task-vectors/knowledge/country_capital.json", root);
    cr_assert_eq(t->n, ll_count_lines(p, "\": \""));
    cr_assert_str_eq(t->input[0], "Al Madinah Region");
    cr_assert_str_eq(t->output[0], "Medina");
    ll_icl_task_free(t);
    /* a path works as well, and max_items keeps the first items */
    o.max_items = 5;
    cr_assert_eq(ll_icl_task_load(p, &o, &t), LL_OK, "%s", ll_last_error());
    cr_assert_eq(t->n, 5);
    ll_icl_task_free(t);
}

Test(icl_tasks, classic_data_sets) {
    const char *root = ll_root();
    ll_icl_task_opts o = {.data_root = root};
    char p[4096];
    ll_icl_task *t;
    /* SST-2 */
    cr_assert_eq(ll_icl_task_load("sst2", &o, &t), LL_OK, "%s", ll_last_error());
    snprintf(p, sizeof p, "%s/icl-calibrate-before-use/sst2/stsa.binary.train", root);
    cr_assert_eq(t->n, ll_count_lines(p, NULL));
    cr_assert_eq(t->n_classes, 2);
    cr_assert(t->classification);
    cr_assert_str_eq(t->output[0], "positive");
    cr_assert_str_eq(t->output[1], "negative");
    cr_assert_str_eq(t->template_hint, "wang");
    ll_icl_task_free(t);
    /* TREC */
    cr_assert_eq(ll_icl_task_load("trec", &o, &t), LL_OK, "%s", ll_last_error());
    snprintf(p, sizeof p, "%s/icl-calibrate-before-use/trec/train.txt", root);
    cr_assert_eq(t->n, ll_count_lines(p, NULL));
    cr_assert_eq(t->n_classes, 6);
    cr_assert_str_eq(t->output[0], "description");
    cr_assert_str_eq(t->input[0], "How did serfdom develop in and then leave Russia ?");
    cr_assert_eq(ll_count_lines(p, "HUM:"), ({
                     int c = 0;
                     for (int i = 0; i < t->n; i++) c += !strcmp(t->output[i], "person");
                     c;
                 }));
    ll_icl_task_free(t);
    /* AG News: the test split only; quoted fields with commas and newlines */
    o.split = "train";
    cr_assert_eq(ll_icl_task_load("agnews", &o, &t), LL_ERR_ARG);
    cr_assert(strstr(ll_last_error(), "test split"), "%s", ll_last_error());
    o.split = NULL; /* agnews: test by default */
    cr_assert_eq(ll_icl_task_load("agnews", &o, &t), LL_OK, "%s", ll_last_error());
    cr_assert_eq(t->n, 7600, "AG News test has 7600 articles, found %d", t->n);
    cr_assert_str_eq(t->output[0], "Business");
    cr_assert(!strncmp(t->input[0], "Fears for T N pension after talks Unions", 40), "%s", t->input[0]);
    int per[4] = {0};
    for (int i = 0; i < t->n; i++) per[t->cls[i]]++;
    for (int c = 0; c < 4; c++) cr_assert_eq(per[c], 1900, "class %d: %d", c, per[c]);
    ll_icl_task_free(t);
    /* CB and RTE */
    o.split = "train";
    cr_assert_eq(ll_icl_task_load("cb", &o, &t), LL_OK, "%s", ll_last_error());
    snprintf(p, sizeof p, "%s/icl-calibrate-before-use/cb/train.jsonl", root);
    cr_assert_eq(t->n, ll_count_lines(p, NULL));
    cr_assert_eq(t->n_classes, 3);
    cr_assert_str_eq(t->output[0], "true");
    cr_assert(strstr(t->input[0], "\nquestion: the language was peeled down true, false or neither?"), "%s", t->input[0]);
    ll_icl_task_free(t);
    cr_assert_eq(ll_icl_task_load("rte", &o, &t), LL_OK, "%s", ll_last_error());
    cr_assert_str_eq(t->output[0], "False");
    cr_assert_eq(t->n_classes, 2);
    ll_icl_task_free(t);
}

/* Independent check of each generator rule on the items' text. */
static int ll_want_class(const char *rule, const char *x) {
    if (!strcmp(rule, "gen:length")) return strlen(x) >= 6;
    if (!strcmp(rule, "gen:length:4")) return strlen(x) >= 4;
    if (!strcmp(rule, "gen:first-letter")) return x[0] >= 'a' && x[0] <= 'm';
    if (!strcmp(rule, "gen:contains:a")) return strchr(x, 'a') != NULL;
    if (!strcmp(rule, "gen:parity")) return atoi(x) % 2;
    if (!strcmp(rule, "gen:threshold:30")) return atoi(x) >= 30;
    return -1;
}

Test(icl_tasks, generators_follow_their_rules) {
    const char *rules[] = {"gen:length", "gen:length:4", "gen:first-letter", "gen:contains:a", "gen:parity",
                           "gen:threshold:30"};
    for (size_t r = 0; r < sizeof rules / sizeof *rules; r++)
        for (int toy = 0; toy < 2; toy++) {
            ll_icl_task_opts o = {.seed = 5, .n_gen = 300, .words = toy ? "toy" : NULL};
            ll_icl_task *t, *t2, *t3;
            cr_assert_eq(ll_icl_task_load(rules[r], &o, &t), LL_OK, "%s: %s", rules[r], ll_last_error());
            cr_assert_eq(t->n, 300);
            cr_assert_eq(t->n_classes, 2);
            cr_assert(t->rule && t->classification);
            int per[2] = {0};
            for (int i = 0; i < t->n; i++) {
                int want = ll_want_class(rules[r], t->input[i]);
                cr_assert_eq(t->cls[i], want, "%s: \"%s\" put in class %d", rules[r], t->input[i], t->cls[i]);
                cr_assert_str_eq(t->output[i], t->classes[want]);
                per[want]++;
            }
            cr_assert(per[0] > 100 && per[1] > 100, "%s: classes %d / %d, expected about even", rules[r], per[0], per[1]);
            /* same seed, same task; another seed, another one */
            cr_assert_eq(ll_icl_task_load(rules[r], &o, &t2), LL_OK);
            for (int i = 0; i < t->n; i++) cr_assert_str_eq(t->input[i], t2->input[i]);
            cr_assert_str_eq(t->classes[0], t2->classes[0]);
            o.seed = 6;
            cr_assert_eq(ll_icl_task_load(rules[r], &o, &t3), LL_OK);
            int same = 0;
            for (int i = 0; i < t->n; i++) same += !strcmp(t->input[i], t3->input[i]);
            cr_assert_lt(same, 150, "%s: seeds 5 and 6 gave %d identical items of 300", rules[r], same);
            ll_icl_task_free(t);
            ll_icl_task_free(t2);
            ll_icl_task_free(t3);
        }
    ll_icl_task_opts o = {.labels = "yes,no"};
    ll_icl_task *t;
    cr_assert_eq(ll_icl_task_load("gen:parity", &o, &t), LL_OK);
    cr_assert_str_eq(t->classes[0], "yes");
    ll_icl_task_free(t);
}

Test(icl_tasks, toy_tables_and_sampling) {
    ll_icl_task *t;
    cr_assert_eq(ll_icl_task_load("toy:color", NULL, &t), LL_OK, "%s", ll_last_error());
    cr_assert_eq(t->n, 48);
    cr_assert_leq(t->n_classes, 10);
    uint64_t rng = 3;
    int d[5], q;
    for (int rep = 0; rep < 50; rep++) {
        cr_assert_eq(ll_icl_task_sample(t, &rng, 5, d, &q), LL_OK);
        for (int i = 0; i < 5; i++) {
            cr_assert_neq(d[i], q);
            for (int j = 0; j < i; j++) cr_assert_neq(d[i], d[j]);
        }
    }
    int big[48], qq;
    cr_assert_eq(ll_icl_task_sample(t, &rng, 48, big, &qq), LL_ERR_ARG);
    ll_icl_task_free(t);
}

Test(icl_tasks, bad_input_names_file_and_place) {
    ll_icl_task *t;
    const char *bad_json = "[\n {\"input\": \"a\", \"output\": \"b\"},\n {\"input\": \"c\"\n";
    cr_assert_eq(ll_icl_task_parse_json(bad_json, strlen(bad_json), "x.json", &t), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "x.json:"), "%s", ll_last_error());
    const char *missing = "[{\"input\": \"a\", \"output\": \"b\"}, {\"input\": \"c\", \"output\": 3}]";
    cr_assert_eq(ll_icl_task_parse_json(missing, strlen(missing), "y.json", &t), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "y.json: item 1: field \"output\""), "%s", ll_last_error());
    const char *obj = "{\"a\": \"b\", \"c\": [1]}";
    cr_assert_eq(ll_icl_task_parse_json(obj, strlen(obj), "z.json", &t), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "field \"c\""), "%s", ll_last_error());
    cr_assert_eq(ll_icl_task_load("gen:nonsense", NULL, &t), LL_ERR_ARG);
    cr_assert_eq(ll_icl_task_load("gen:length:99", NULL, &t), LL_ERR_ARG, "every word is shorter than 99");
    cr_assert_eq(ll_icl_task_load("toy:weather", NULL, &t), LL_ERR_ARG);
    /* a classic file with a bad line */
    char dir[] = "/tmp/ll_icl_XXXXXX";
    cr_assert(mkdtemp(dir));
    char p[4200];
    snprintf(p, sizeof p, "%s/icl-calibrate-before-use", dir);
    mkdir(p, 0700);
    strcat(p, "/sst2");
    mkdir(p, 0700);
    strcat(p, "/stsa.binary.train");
    FILE *f = fopen(p, "w");
    fputs("1 good film\n0 bad film\n2 odd film\n", f);
    fclose(f);
    ll_icl_task_opts o = {.data_root = dir};
    cr_assert_eq(ll_icl_task_load("sst2", &o, &t), LL_ERR_FORMAT);
    cr_assert(strstr(ll_last_error(), "stsa.binary.train:3:"), "%s", ll_last_error());
    cr_assert_eq(ll_icl_task_load("no_such_task", &o, &t), LL_ERR_MISSING);
    cr_assert(strstr(ll_last_error(), "no_such_task"));
    remove(p);
}
