#!/bin/sh
# docs.t: the documentation keeps up with the code: every program has a man
# page that names its exit codes and every option its --help lists; every
# configuration key of the defaults is described in skystack.conf(5).
. "$(dirname "$0")/lib.sh"
# three tests per program, one for the configuration keys
plan $(($(ls "$SRC/tools" | wc -l) * 3 + 1))

for t in $(ls "$SRC/tools"); do
    page=$SRC/man/man1/$t.1
    [ -f "$page" ]; ok $? "$t has a man page"
    if [ ! -f "$page" ]; then skip 2 "$t has no man page"; continue; fi
    text=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page")
    like "$text" "EXIT STATUS" "$t(1) documents its exit status"
    missing=""
    for o in $("$t" --help 2>&1 | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z0-9-]*' | sed 's/.*--/--/' | sort -u); do
        case $o in --help|--version|--config|--set|--dump-config|--verbose|--quiet|--threads) continue ;; esac
        printf '%s' "$text" | grep -q -- "$o" || missing="$missing $o"
    done
    is "$missing" "" "$t(1) describes every option of $t --help"
done

conf=$(sed 's/\\-/-/g; s/\\f[BIRP]//g; s/\\_/_/g' "$SRC/man/man5/skystack.conf.5")
missing=""
# Leaf keys of the effective default configuration (instrument keyword maps
# are described once, for the generic entry).
for k in $(imsim --dump-config | grep -oE '"[a-z_0-9]+": *[^{[]' | sed 's/"\([a-z_0-9]*\)".*/\1/' | sort -u); do
    printf '%s' "$conf" | grep -q -- "$k" || missing="$missing $k"
done
is "$missing" "" "skystack.conf(5) describes every configuration key"
done_testing
