#!/usr/bin/env python3
"""Independent provenance test vectors for skystack (skystack(7), PROVENANCE).

Computes, with the Python standard library only (json, hashlib, base64),
the canonical JSON and the id of a few provenances, and the canonical text of
many reals, and writes them to vectors.json beside this script. The C unit
test tests/unit/test_provenance.c must reproduce every value.

Canonical JSON = json.dumps(doc, sort_keys=True, separators=(",", ":"),
ensure_ascii=False) encoded as UTF-8; Python writes floats with repr(), the
shortest text that reads back to the same double (1e-07, 2.0, 1e+16).
id = base32(sha256(canonical))[:20].

Run:  python3 tests/data/provenance/make_vectors.py
"""
import base64
import hashlib
import json
import os
import random
import sys


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prov_id(process, code_version, parameters, upstream_ids):
    major, minor = code_version.split(".")[:2]
    doc = {
        "code_version": "%d.%d" % (int(major), int(minor)),
        "parameters": parameters,
        "process": process,
        "upstream_hashes": sorted(set(upstream_ids)),
    }
    text = canonical(doc)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return text, base64.b32encode(digest).decode("ascii")[:20]


CASES = [
    {
        "name": "nested parameters, no upstreams",
        "process": "preprocessing",
        "code_version": "1.0.0",
        "parameters": {
            "instrument": "decam",
            "link": False,
            "instruments": {"decam": {"gain": "ARAWGAIN", "filter_split": True, "science_hdu": None}},
            "zeta": {"b": {"d": 1, "c": [3, 2, 1]}, "a": 0},
        },
        "upstreams": [],
    },
    {
        "name": "unicode and escaped strings, key order by code point",
        "process": "extraction",
        "code_version": "1.0.0",
        "parameters": {
            "target": "M\u00e9lange \u65e5\u672c \U0001F52D",
            "quote": "say \"hi\" \\ back/slash",
            "controls": "tab\there\nnewline\r\u0001\u001f\u007f",
            "separators": "\u2028\u2029",
            "B": 1, "a": 2, "\u00e9": 3, "a.b": 4, "ab": 5, "Z": 6,
        },
        "upstreams": [0],
    },
    {
        "name": "reals and integers",
        "process": "coaddition",
        "code_version": "1.0.3",
        "parameters": {
            "tenth": 0.1, "tiny": 1e-7, "two_and_half": 2.5, "two": 2.0, "int_two": 2,
            "negative": -3.75, "small": 0.0001, "smaller": 1e-05, "big": 1e16,
            "less_big": 1e15, "odd": 123456.789, "third": 1 / 3, "neg_zero": -0.0,
            "zero": 0.0, "denormal": 5e-324, "max": 1.7976931348623157e308,
            "big_int": 9007199254740993, "neg_int": -42, "zero_int": 0,
            "pi": 3.141592653589793, "avogadro": 6.02214076e23,
        },
        "upstreams": [1],
    },
    {
        "name": "arrays, booleans, null, empty containers, two upstreams",
        "process": "referencing",
        "code_version": "2.1.0",
        "parameters": {
            "criteria": [{"order": "quality", "min_images": 1, "max_seeing": None,
                          "instruments": ["decam", "ztf"]}, {}],
            "flags": [True, False, None],
            "empty_list": [],
            "empty_object": {},
            "mixed": [1, 1.5, "x", [2, [3.0]], {"k": None}],
        },
        "upstreams": [2, 0],
    },
    {
        "name": "duplicate upstreams count once",
        "process": "coaddition",
        "code_version": "1.0.0",
        "parameters": {"method": "clipped", "clip_sigma": 3.0},
        "upstreams": [1, 0, 1, 0, 1],
    },
    {
        "name": "same as the previous one without duplicates, other PATCH",
        "process": "coaddition",
        "code_version": "1.0.9",
        "parameters": {"clip_sigma": 3.0, "method": "clipped"},
        "upstreams": [0, 1],
    },
    {
        "name": "empty parameters",
        "process": "extraction",
        "code_version": "10.20.30",
        "parameters": {},
        "upstreams": [],
    },
]


def real_samples():
    """Reals whose canonical text must be Python's repr."""
    fixed = [0.1, 0.2, 0.3, 1e-7, 2.5, 2.0, 1.0, 0.5, 100.0, 1e15, 1e16, 1e17, 1e-4, 1e-5,
             9.999999999999999e15, 1.2345678901234567e-5, 0.000123, 123456789.0,
             1e22, 1e23, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
             0.30000000000000004, 1 / 3, 2 / 3, 3.0e-4, 299792.458, 6.62607015e-34,
             -1.5, -0.0, 0.0, 4.35, 0.005, 1e100, 1.5e-300, 9007199254740993.0, 60000.5]
    rng = random.Random(20261121)
    out = list(fixed)
    for _ in range(300):
        exp = rng.randint(-30, 30)
        digits = rng.randint(1, 17)
        mant = rng.random()
        x = float("%.*e" % (digits - 1, mant * 10.0 ** exp))
        out.append(-x if rng.random() < 0.3 else x)
    for _ in range(100):  # raw doubles with full 17-digit expansions
        out.append(rng.uniform(-1e6, 1e6))
    return [repr(x) for x in out]


def main():
    cases = []
    ids = []
    for case in CASES:
        up_ids = [ids[i] for i in case["upstreams"]]
        text, pid = prov_id(case["process"], case["code_version"], case["parameters"], up_ids)
        ids.append(pid)
        entry = dict(case)
        entry["canonical"] = text
        entry["id"] = pid
        cases.append(entry)
    doc = {
        "generator": "tests/data/provenance/make_vectors.py (Python %d.%d, standard library)"
                     % sys.version_info[:2],
        "cases": cases,
        "reals": real_samples(),
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for c in cases:
        print(c["id"], c["name"])


if __name__ == "__main__":
    main()
