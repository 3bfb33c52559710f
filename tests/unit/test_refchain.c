/* test_refchain.c: the provenance chain refmake computes from a configuration
 * (which parameters move which ids, criteria normalisation, the
 * upstream_hash definition, refusals) and the canonical keys of places. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "skystack/skystack.h"
#include "skystack/ingest.h"
#include "skystack/ref.h"
#include "../tap.h"
#include "ingest/ingest_internal.h"
#include "ref/ref_internal.h"

/* The chain of the defaults plus up to four --set assignments. */
static sk_ref_chain *chain_of(const char *instrument, const char *s1, const char *s2,
                              const char *s3, const char *s4)
{
    char *sets[4];
    int n = 0;
    if (s1) sets[n++] = (char *)s1;
    if (s2) sets[n++] = (char *)s2;
    if (s3) sets[n++] = (char *)s3;
    if (s4) sets[n++] = (char *)s4;
    sk_config *cfg = NULL;
    if (sk_config_load(NULL, sets, n, &cfg)) {
        tap_diag("config: %s", sk_errmsg());
        return NULL;
    }
    sk_ref_chain *c = NULL;
    if (sk_ref_chain_make(cfg, instrument, &c))
        tap_diag("chain: %s", sk_errmsg());
    sk_config_free(cfg);
    return c;
}

/* Expect the chain to be refused with SK_EINPUT and a message holding `part`. */
static int refused(const char *set, const char *part)
{
    char *sets[1] = {(char *)set};
    sk_config *cfg = NULL;
    int st = sk_config_load(NULL, sets, 1, &cfg);
    sk_ref_chain *c = NULL;
    if (st == SK_OK)
        st = sk_ref_chain_make(cfg, NULL, &c);
    sk_ref_chain_free(c);
    sk_config_free(cfg);
    int good = st == SK_EINPUT && strstr(sk_errmsg(), part) != NULL;
    if (!good)
        tap_diag("status %d, message \"%s\", wanted \"%s\"", st, sk_errmsg(), part);
    return good;
}

static int has_upstream(const sk_prov *p, const sk_prov *up)
{
    for (int i = 0; i < p->nupstreams; i++)
        if (!strcmp(p->upstreams[i]->id, up->id))
            return 1;
    return 0;
}

static void test_structure(void)
{
    sk_ref_chain *c = chain_of(NULL, NULL, NULL, NULL, NULL);
    ok(c != NULL, "the default configuration gives a chain");
    if (!c)
        return;
    is_str(c->preprocessing->process, "preprocessing", "1: preprocessing");
    is_str(c->extraction->process, "extraction", "2: extraction of the inputs");
    is_str(c->coaddition->process, "coaddition", "3: coaddition");
    is_str(c->coadd_extraction->process, "extraction", "4: extraction of the coadd");
    is_int(c->nreferencing, 1, "5: one referencing provenance for the one default criteria set");
    is_str(c->referencing[0]->process, "referencing", "5: referencing");
    ok(c->extraction->nupstreams == 1 && has_upstream(c->extraction, c->preprocessing),
       "the inputs' extraction has the preprocessing as its upstream");
    ok(c->coaddition->nupstreams == 2 && has_upstream(c->coaddition, c->preprocessing) &&
           has_upstream(c->coaddition, c->extraction),
       "the coaddition has the inputs' preprocessing and extraction as upstreams");
    ok(c->coadd_extraction->nupstreams == 1 && has_upstream(c->coadd_extraction, c->coaddition),
       "the coadd extraction has the coaddition as its upstream");
    ok(c->referencing[0]->nupstreams == 2 && has_upstream(c->referencing[0], c->coaddition) &&
           has_upstream(c->referencing[0], c->coadd_extraction),
       "the referencing provenance has the coaddition and coadd extraction as upstreams");
    ok(strcmp(c->extraction->id, c->coadd_extraction->id) != 0,
       "the two extractions differ by their upstreams");

    /* The preprocessing is imingest's. */
    sk_config *cfg = NULL;
    sk_prov *ing = NULL;
    if (sk_config_load(NULL, NULL, 0, &cfg) == SK_OK && sk_ingest_provenance(cfg, NULL, &ing) == SK_OK)
        is_str(c->preprocessing->id, ing->id, "the preprocessing provenance is the one imingest records");
    else
        ok(0, "imingest's provenance: %s", sk_errmsg());
    sk_prov_free(ing);
    sk_config_free(cfg);

    /* upstream_hash: first 20 base32 characters of SHA-256 of the JSON
     * array of the two ids, sorted, written out here by hand. */
    const char *a = c->coaddition->id, *b = c->coadd_extraction->id;
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    char text[64];
    snprintf(text, sizeof text, "[\"%s\",\"%s\"]", a, b);
    unsigned char digest[32];
    sk_sha256(text, strlen(text), digest);
    char b32[64];
    sk_base32(digest, 32, b32, sizeof b32);
    b32[20] = '\0';
    is_str(c->upstream_hash, b32, "upstream_hash is the hash of the sorted coadd and coadd-extraction ids");

    /* The criteria stored are the normalised defaults. */
    const json_t *p = c->referencing[0]->parameters;
    ok(json_is_real(json_object_get(p, "min_overlap")) &&
           json_is_integer(json_object_get(p, "min_images")) &&
           json_is_null(json_object_get(p, "max_seeing")) &&
           json_is_string(json_object_get(p, "order")),
       "the referencing parameters are the criteria with their defaults");
    ok(!json_object_get(p, "description") && !json_object_get(p, "allow_append"),
       "neither the description nor allow_append is a parameter");
    sk_ref_chain_free(c);
}

static void test_what_moves_what(void)
{
    sk_ref_chain *base = chain_of(NULL, NULL, NULL, NULL, NULL);
    sk_ref_chain *noncrit = chain_of(NULL, "referencing.description=the deep one",
                                     "referencing.allow_append=false", "coaddition.threads=3",
                                     "extraction.threads=2");
    sk_ref_chain *seeing1 = chain_of(NULL, "referencing.criteria=[{\"max_seeing\":1}]", NULL, NULL, NULL);
    sk_ref_chain *seeing1r = chain_of(NULL, "referencing.criteria=[{\"max_seeing\":1.0}]", NULL, NULL, NULL);
    sk_ref_chain *inst1 = chain_of(NULL, "referencing.criteria=[{\"instruments\":[\"B\",\"A\",\"A\"]}]",
                                   NULL, NULL, NULL);
    sk_ref_chain *inst2 = chain_of(NULL, "referencing.criteria=[{\"instruments\":[\"A\",\"B\"]}]", NULL,
                                   NULL, NULL);
    sk_ref_chain *mean = chain_of(NULL, "coaddition.method=mean", NULL, NULL, NULL);
    sk_ref_chain *det = chain_of(NULL, "extraction.detection.threshold_sigma=3", NULL, NULL, NULL);
    sk_ref_chain *decam = chain_of("decam", NULL, NULL, NULL, NULL);
    sk_ref_chain *two = chain_of(NULL,
                                 "referencing.criteria=[{\"max_seeing\":1.2,\"min_images\":5},"
                                 "{\"max_seeing\":2.0,\"min_images\":2},{\"max_seeing\":1.2,\"min_images\":5}]",
                                 NULL, NULL, NULL);
    if (!base || !noncrit || !seeing1 || !seeing1r || !inst1 || !inst2 || !mean || !det || !decam ||
        !two) {
        ok(0, "every configuration gives a chain");
    } else {
        ok(!strcmp(noncrit->referencing[0]->id, base->referencing[0]->id) &&
               !strcmp(noncrit->upstream_hash, base->upstream_hash),
           "description, allow_append and thread counts change no id");
        is_str(seeing1->referencing[0]->id, seeing1r->referencing[0]->id,
               "max_seeing 1 and 1.0 are the same criteria");
        ok(strcmp(seeing1->referencing[0]->id, base->referencing[0]->id) != 0,
           "a new criterion changes the referencing provenance");
        is_str(seeing1->upstream_hash, base->upstream_hash, "but not the upstream_hash");
        is_str(inst1->referencing[0]->id, inst2->referencing[0]->id,
               "instrument lists are compared as sets");
        ok(strcmp(mean->coaddition->id, base->coaddition->id) != 0 &&
               strcmp(mean->upstream_hash, base->upstream_hash) != 0,
           "another combine method changes the coaddition and the upstream_hash");
        is_str(mean->extraction->id, base->extraction->id, "but not the inputs' extraction");
        ok(strcmp(det->extraction->id, base->extraction->id) != 0 &&
               strcmp(det->coaddition->id, base->coaddition->id) != 0 &&
               strcmp(det->coadd_extraction->id, base->coadd_extraction->id) != 0 &&
               strcmp(det->upstream_hash, base->upstream_hash) != 0,
           "an extraction parameter changes both extractions, the coaddition and the upstream_hash");
        is_str(det->preprocessing->id, base->preprocessing->id, "but not the preprocessing");
        ok(strcmp(decam->preprocessing->id, base->preprocessing->id) != 0 &&
               strcmp(decam->upstream_hash, base->upstream_hash) != 0,
           "another instrument keyword map changes everything from the preprocessing down");
        is_int(two->nreferencing, 2, "a repeated criteria set counts once");
        if (two->nreferencing == 2)
            ok(json_real_value(json_object_get(two->referencing[0]->parameters, "max_seeing")) == 1.2 &&
                   json_real_value(json_object_get(two->referencing[1]->parameters, "max_seeing")) == 2.0,
               "criteria sets keep the configuration's order");
        is_str(two->upstream_hash, base->upstream_hash, "criteria never change the upstream_hash");
    }
    sk_ref_chain_free(base);
    sk_ref_chain_free(noncrit);
    sk_ref_chain_free(seeing1);
    sk_ref_chain_free(seeing1r);
    sk_ref_chain_free(inst1);
    sk_ref_chain_free(inst2);
    sk_ref_chain_free(mean);
    sk_ref_chain_free(det);
    sk_ref_chain_free(decam);
    sk_ref_chain_free(two);

    sk_ref_chain *c = NULL;
    sk_config *cfg = NULL;
    int st = sk_config_load(NULL, NULL, 0, &cfg);
    if (st == SK_OK)
        st = sk_ref_chain_make(cfg, "nosuchcamera", &c);
    ok(st == SK_EINPUT && strstr(sk_errmsg(), "nosuchcamera"), "an unknown keyword map is refused");
    sk_ref_chain_free(c);
    sk_config_free(cfg);
}

static void test_refusals(void)
{
    ok(refused("referencing.criteria=[{\"max_seeing\":\"good\"}]", "referencing.criteria[0].max_seeing"),
       "a criterion that is not a number");
    ok(refused("referencing.criteria=[{},{\"min_images\":0}]", "referencing.criteria[1].min_images"),
       "min_images 0");
    ok(refused("referencing.criteria=[{\"max_images\":2.5}]", "referencing.criteria[0].max_images"),
       "a fractional max_images");
    ok(refused("referencing.criteria=[{\"min_images\":4,\"max_images\":3}]", "max_images 3 is below min_images 4"),
       "max_images below min_images");
    ok(refused("referencing.criteria=[{\"order\":\"best\"}]", "referencing.criteria[0].order"),
       "an unknown order");
    ok(refused("referencing.criteria=[{\"min_overlap\":1.5}]", "min_overlap"), "an overlap above 1");
    ok(refused("referencing.criteria=[{\"date_range\":-7}]", "date_range"), "a negative date range");
    ok(refused("referencing.criteria=[]", "at least one set"), "an empty list of criteria");
}

static void test_places(void)
{
    sk_place field = {.target = "COSMOS", .section = "N4"};
    char *k = sk_place_key(&field);
    is_str(k, "{\"section\":\"N4\",\"target\":\"COSMOS\"}", "a field's key");
    free(k);
    sk_place pos = {.has_position = 1, .ra_deg = 150.1000004, .dec_deg = -2.2000001};
    k = sk_place_key(&pos);
    is_str(k, "{\"dec\":-2.2,\"ra\":150.1}", "a position's key, to a micro-degree");
    free(k);
    sk_place wrap = {.has_position = 1, .ra_deg = 359.9999999, .dec_deg = 0.0000001};
    k = sk_place_key(&wrap);
    is_str(k, "{\"dec\":0.0,\"ra\":0.0}", "RA rounds across 360 to 0, and -0 is 0");
    free(k);
    sk_place both = {.target = "X", .section = "1", .has_position = 1, .ra_deg = 1, .dec_deg = 1};
    ok(sk_place_check(&both) == SK_EINPUT && strstr(sk_errmsg(), "not both"), "a field and a position");
    sk_place none = {0};
    ok(sk_place_check(&none) == SK_EINPUT, "no place");
    sk_place half = {.target = "X"};
    ok(sk_place_check(&half) == SK_EINPUT && strstr(sk_errmsg(), "--section"), "a target without a section");
    sk_place ra = {.has_position = 1, .ra_deg = 360, .dec_deg = 0};
    ok(sk_place_check(&ra) == SK_EINPUT && strstr(sk_errmsg(), "--ra"), "RA 360");
    sk_place dec = {.has_position = 1, .ra_deg = 10, .dec_deg = -90.5};
    ok(sk_place_check(&dec) == SK_EINPUT && strstr(sk_errmsg(), "--dec"), "Dec -90.5");
    ok(sk_place_key(&dec) == NULL, "no key for a bad place");
}

int main(void)
{
    tap_plan(47);
    test_structure();
    test_what_moves_what();
    test_refusals();
    test_places();
    return tap_done();
}
