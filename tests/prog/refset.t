#!/bin/sh
# refset: list, show, refs (which reference a pipeline loads), mark-bad,
# create and delete, against a hand-built database state with known truth.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
. "$SRC/tests/prog/reflib.sh"
plan 67
ref_db_start

exit_is 0 "list on an empty database" refset list
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" 1 "list on an empty database prints only the header"
exit_is 0 "create A" refset create A --description "weekly references"
is "$(cat "$T_TMP/out")" A "create prints the name"
exit_is 1 "create A again is refused" refset create A
like "$(cat "$T_TMP/err")" "exists already" "the refusal says the refset exists"
exit_is 1 "an empty name is refused" refset create ""
exit_is 0 "show A" refset show A --json
like "$(cat "$T_TMP/out")" '"description":"weekly references"' "show gives the description"
like "$(cat "$T_TMP/out")" '"provenances":\[\]' "a new refset has no provenance"
like "$(cat "$T_TMP/out")" '"upstream_hash":null' "nor an upstream hash"
exit_is 2 "show of a missing refset" refset show nosuch
like "$(cat "$T_TMP/err")" "refset 'nosuch' does not exist" "the error names the refset"
exit_is 1 "an unknown command" refset frobnicate
exit_is 1 "show without a name" refset show
exit_is 1 "--reason outside mark-bad" refset show A --reason x

sql_file "$SRC/tests/data/ref/refset_fixture.sql"
ok $? "fixture loaded"

exit_is 0 "list" refset list
like "$(grep '^B ' "$T_TMP/out")" '^B +2 +3 +0 +UPHASH' "list: B holds 2 provenances and 3 references"
like "$(grep '^C ' "$T_TMP/out")" '^C +1 +1 +0 ' "list: C holds the reference it shares with D"
exit_is 0 "list --json" refset list --json
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" 4 "list --json: one line per refset"

exit_is 0 "show B" refset show B --json
out=$(cat "$T_TMP/out")
like "$out" '"provenances":\[\{[^]]*"id":"STRICTAAAAAAAAAAAAAA"[^]]*"position":0[^]]*\},\{.*"id":"RELAXEDAAAAAAAAAAAAA".*"position":1' \
    "show: the strict provenance first, then the relaxed one"
like "$out" '"criteria":\{"max_seeing":1.2,"min_images":5,"order":"quality"\}' "show: the strict criteria"
like "$out" '"bad_references":0,.*"references":3,' "show: 3 good references, none bad"
exit_is 0 "show B as a table" refset show B
like "$(cat "$T_TMP/out")" "criteria: max_seeing=2.5, min_images=2, order=quality" "table: the relaxed criteria"
like "$(cat "$T_TMP/out")" "upstream: coaddition COAAAAAAAAAAAAAAAAAA" "table: the upstream coadd provenance"

exit_is 0 "refs B" refset refs B --json
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" 3 "refs B: three references"
is "$(grep '"loaded":true' "$T_TMP/out" | sed 's/.*"id":\([0-9]*\).*/\1/' | sort | tr '\n' ' ')" "1 3 " \
    "refs B: the strict one is loaded at F1/S1 and the only one at the g position"
exit_is 0 "refs B at F1/S1" refset refs B --target F1 --section S1 --filter r
like "$(grep '^ *1 ' "$T_TMP/out")" '^ +1 +F1/S1 +r +0 +STRICTA+ +101 +\* ' "table: reference 1 is loaded"
like "$(grep '^ *2 ' "$T_TMP/out")" "/coadds/c102.fits\$" "table: reference 2 is listed with its path"
exit_is 0 "refs B at a position inside the g coadd" refset refs B --ra 150.15 --dec 2.25 --json
like "$(cat "$T_TMP/out")" '^\{.*"id":3,.*"loaded":true' "the position finds reference 3 by its footprint"
is "$(wc -l <"$T_TMP/out" | tr -d ' ')" 1 "and only it"
exit_is 2 "refs B at a position outside every footprint" refset refs B --ra 150.35 --dec 2.2
exit_is 2 "refs B in a filter it lacks there" refset refs B --target F1 --section S1 --filter g
exit_is 1 "refs with half a field" refset refs B --target F1
exit_is 1 "refs with a field and a position" refset refs B --target F1 --section S1 --ra 1 --dec 1

exit_is 1 "mark-bad without a reason" refset mark-bad 1
exit_is 1 "mark-bad of a non-number" refset mark-bad one --reason x
exit_is 2 "mark-bad of a missing reference" refset mark-bad 999 --reason x
exit_is 0 "mark-bad 1" refset mark-bad 1 --reason "satellite trail"
is "$(sql "SELECT is_bad, bad_reason FROM refs WHERE id = 1")" "t|satellite trail" "reference 1 is bad with its reason"
exit_is 0 "refs B at F1/S1 after mark-bad" refset refs B --target F1 --section S1 --json
is "$(grep '"loaded":true' "$T_TMP/out" | sed 's/.*"id":\([0-9]*\).*/\1/')" 2 \
    "the relaxed reference is loaded once the strict one is bad"
like "$(grep '"id":1,' "$T_TMP/out")" '"bad_reason":"satellite trail".*"is_bad":true' "the bad one is listed as bad"
exit_is 0 "list after mark-bad" refset list
like "$(grep '^B ' "$T_TMP/out")" '^B +2 +2 +1 ' "list: B holds 2 good and 1 bad reference"

exit_is 1 "delete B while it holds references" refset delete B
like "$(cat "$T_TMP/err")" "holds 3 references" "the refusal counts the references"
is "$(sql "SELECT count(*) FROM refsets WHERE name = 'B'")|$(sql "SELECT count(*) FROM refs")" "1|4" \
    "nothing was deleted"
exit_is 0 "delete B --force" refset delete B --force
is "$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM refs")" 4 "its three references are gone"
is "$(sql "SELECT count(*) FROM images WHERE type = 'coadd'")" 4 "their coadds stay"
exit_is 0 "delete C --force" refset delete C --force
is "$(sql "SELECT count(*) FROM refs WHERE id = 4")" 1 "the reference C shares with D stays"
exit_is 0 "refs D" refset refs D
exit_is 0 "delete A (empty)" refset delete A
exit_is 2 "delete a missing refset" refset delete A
exit_is 0 "delete D --force" refset delete D --force
is "$(sql "SELECT count(*) FROM refs")|$(sql "SELECT count(*) FROM refsets")" "0|0" "all gone"

SKYSTACK_DB_DIR="$REF_ROOT/nodb" exit_is 3 "no database: exit 3" refset list
like "$(cat "$T_TMP/err")" "skydb start" "the error says how to start one"
done_testing
