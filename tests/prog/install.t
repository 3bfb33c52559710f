#!/bin/sh
# install.t: `make install DESTDIR=...` installs programs, libraries, headers,
# skystack.pc, man pages and share/skystack, and a program builds against the
# installed library through pkg-config.
. "$(dirname "$0")/lib.sh"
# two tests per program (its binary, its man page) and twelve more
plan $((12 + 2 * $(ls "$SRC/tools" | wc -l)))

root=$T_TMP/root
B=$(basename "${SK_BUILDDIR:-build}")
run_ok "make install into DESTDIR" make -s -C "$SRC" B="$B" DESTDIR="$root" install

prefix=$(sed -n 's/^prefix *= *//p' "$SRC/config.mk")
p=$root$prefix
for t in $(ls "$SRC/tools"); do
    [ -x "$p/bin/$t" ]; ok $? "program $t installed"
    [ -f "$p/share/man/man1/$t.1" ]; ok $? "man page $t.1 installed"
done
[ -f "$p/lib/libskystack.a" ]; ok $? "static library installed"
[ -f "$p/lib/libskystack.so.0" ]; ok $? "shared library installed"
[ -f "$p/include/skystack/skystack.h" ]; ok $? "public header installed"
[ -f "$p/lib/pkgconfig/skystack.pc" ]; ok $? "skystack.pc installed"
[ -f "$p/share/skystack/defaults.json" ]; ok $? "defaults.json installed"
[ -f "$p/share/man/man7/skystack.7" ]; ok $? "skystack(7) installed"
[ -f "$p/share/man/man5/skystack.conf.5" ]; ok $? "skystack.conf(5) installed"

cat > "$T_TMP/hello.c" <<'CEOF'
#include <skystack/skystack.h>
#include <stdio.h>
int main(void)
{
    char out[64];
    sk_base32((const unsigned char *)"foobar", 6, out, sizeof out);
    printf("%s %s\n", sk_version(), out);
    return 0;
}
CEOF
# The staged .pc names the final prefix; point a copy at the staging root.
mkdir -p "$T_TMP/pc"
sed "s|^prefix=.*|prefix=$p|" "$p/lib/pkgconfig/skystack.pc" >"$T_TMP/pc/skystack.pc"
export PKG_CONFIG_PATH="$T_TMP/pc"
flags=$(pkg-config --cflags --libs skystack 2>&1)
ok $? "pkg-config knows skystack"
san=""
case $B in *san*) san="-fsanitize=address,undefined" ;; esac
# shellcheck disable=SC2086
run_ok "a program compiles and links against the installed library" \
    cc $san -o "$T_TMP/hello" "$T_TMP/hello.c" $flags
out=$(LD_LIBRARY_PATH="$p/lib" "$T_TMP/hello" 2>&1)
like "$out" "MZXW6YTBOI======" "the installed shared library runs"
# The installed programs find the installed share directory on their own.
if [ -x "$p/bin/imquery" ]; then
    out=$(env -u SKYSTACK_SHARE "$p/bin/imquery" --dump-config 2>&1)
    like "$out" '"coaddition"' "an installed program finds its defaults without SKYSTACK_SHARE"
fi
done_testing
