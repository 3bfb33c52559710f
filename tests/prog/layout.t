#!/bin/sh
# The shape of the code (HACKING): lib/ in subsystem folders; no program of
# the toolkit started by the library or by another program; no function
# over 150 lines in lib/ and tools/; SQL only in lib/db (and share/sql);
# no libpq in installed headers or outside lib/db; every library file opens
# with a comment that names it and says its job.
. "${SK_SRCDIR:-.}/tests/prog/lib.sh"
plan 19
cd "$SRC" || exit 1

lines() { sed '/^$/d' "$1" | wc -l | tr -d ' '; }

# 1. subsystem folders, in the order data flows
for d in core io db numeric ingest extract calib coadd ref sim; do
    [ -d "lib/$d" ] && ls lib/$d/*.c >/dev/null 2>&1
    ok $? "lib/$d holds library sources"
done
find lib -maxdepth 1 -name '*.c' >"$T_TMP/top"
is "$(lines "$T_TMP/top")" 0 "no .c file directly in lib/"
sed 's/^/#   /' "$T_TMP/top"

# 2. nothing runs another skystack program
grep -rn 'posix_spawn\|execv\|execl\|system *(\|popen *(' lib tools --include='*.c' |
    grep -v '^lib/db/cluster.c:' | grep -v '^tools/skydb/skydb.c:.*execv(psql' >"$T_TMP/spawn"
is "$(lines "$T_TMP/spawn")" 0 "no program started from lib/ or tools/ (PostgreSQL's own only: lib/db/cluster.c, skydb psql)"
sed 's/^/#   /' "$T_TMP/spawn"
grep -rln '/proc/self/exe' lib tools | grep -v '^lib/core/share.c$' >"$T_TMP/self"
is "$(lines "$T_TMP/self")" 0 "/proc/self/exe only where share/ is located (lib/core/share.c)"

# 3. no function over 150 lines: from the line of its opening brace at
# nesting depth 0 to its closing brace (comments and strings skipped)
perl -e '
    my $limit = 150; my @long;
    for my $f (@ARGV) {
        open my $fh, "<", $f or die "$f: $!";
        local $/; my $s = <$fh>; close $fh;
        $s =~ s{/\*.*?\*/}{ my $c = $&; $c =~ tr/\n//cd; $c }gse;
        $s =~ s{//[^\n]*}{}g;
        $s =~ s{"(?:\\.|[^"\\\n])*"}{""}g;
        $s =~ s{'"'"'(?:\\.|[^'"'"'\\\n])*'"'"'}{0}g;
        my ($depth, $line, $start, $head) = (0, 1, 0, "");
        my $text = "";
        for my $ch (split //, $s) {
            if ($ch eq "\n") { $line++; }
            if ($ch eq "{") {
                if ($depth == 0) { $start = $line; $head = $text; }
                $depth++;
            } elsif ($ch eq "}") {
                $depth--;
                if ($depth == 0) {
                    my $n = $line - $start + 1;
                    my ($name) = $head =~ /(\w+)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*(?:__attribute__\S*\s*)?$/s;
                    push @long, "$f:$start $name ($n lines)" if defined $name && $n > $limit;
                    $text = "";
                }
            }
            if ($depth == 0 && $ch ne "}") { $text .= $ch; $text = substr($text, -400) if length $text > 800; }
            elsif ($depth == 0) { $text = ""; }
        }
    }
    print "$_\n" for @long;
' $(find lib tools -name '*.c' | sort) >"$T_TMP/long"
is "$(lines "$T_TMP/long")" 0 "no function over 150 lines in lib/ and tools/"
sed 's/^/#   /' "$T_TMP/long"

# 4. SQL only in lib/db: statements in string literals elsewhere
grep -rnE '"[[:space:]]*(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM|CREATE (TABLE|INDEX)|ALTER TABLE|WITH [a-z_]+ AS|LOCK TABLE|BEGIN|COMMIT|ROLLBACK)\b' \
    lib tools --include='*.c' --include='*.h' | grep -v '^lib/db/' >"$T_TMP/sql"
is "$(lines "$T_TMP/sql")" 0 "no SQL text outside lib/db and share/sql"
sed 's/^/#   /' "$T_TMP/sql" | head -20
grep -rlnE 'libpq-fe\.h|db_priv\.h|PGresult|PGconn' lib tools --include='*.c' --include='*.h' |
    grep -v '^lib/db/' >"$T_TMP/pq"
is "$(lines "$T_TMP/pq")" 0 "libpq and lib/db/db_priv.h used in lib/db only"
sed 's/^/#   /' "$T_TMP/pq"
grep -lE 'libpq|PGresult|PGconn|\bOid\b|\bPQ[a-z]+' lib/skystack/*.h |
    while read -r h; do grep -nE 'libpq-fe|PGresult|PGconn|\bOid\b|\bPQ[a-z]+ *\(' "$h" | sed "s|^|$h:|"; done >"$T_TMP/pubpq"
is "$(lines "$T_TMP/pubpq")" 0 "no libpq symbol in the installed headers"
sed 's/^/#   /' "$T_TMP/pubpq"

# 5. every library file says what it is for in its first line
for f in $(find lib -name '*.c' -o -name '*.h' | sort); do
    b=$(basename "$f")
    head -1 "$f" | grep -q "^/\* $b: ..*" || echo "$f"
done >"$T_TMP/nohead"
is "$(lines "$T_TMP/nohead")" 0 "each library file opens with /* name: its job */"
sed 's/^/#   /' "$T_TMP/nohead"
grep -rln 'SPEC §\|SPEC section' lib tools >"$T_TMP/spec"
is "$(lines "$T_TMP/spec")" 0 "comments cite man pages, not a document outside the tree"
sed 's/^/#   /' "$T_TMP/spec"

done_testing
