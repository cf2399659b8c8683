#!/usr/bin/env bash
# test_package.sh — signed plugin packages from the outside: `switchboard
# plugins keygen | pack | verify | install` with the test plugin. A package
# verifies only against a trusted key; one changed after signing (a file, the
# manifest, an entry added, a path that climbs out) is refused with exit 2;
# install puts ID.so into the config's first plugin directory, where the
# daemon's loader finds it.
set -u
. "$(dirname "$0")/lib.sh"

SB=${SB_BINARY:?}
PLUGINS=${SB_TEST_PLUGIN_DIR:?}
SRC=${SB_SOURCE_DIR:?}
work=$(mktemp -d /tmp/sbpkg.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

# --- keys -----------------------------------------------------------------------
pub=$("$SB" plugins keygen acme 2>/dev/null)
check "keygen prints the public key it wrote to NAME.pub" '[[ $pub =~ ^[0-9a-f]{64}$ ]] && [ "$pub" = "$(cat acme.pub)" ]' "$pub"
check "the signing key is readable by its owner only" '[ "$(stat -c %a acme.key)" = 600 ]'
expect "keygen never writes over a key" 2 'acme.key: it exists already' "$SB" plugins keygen acme
"$SB" plugins keygen other >/dev/null 2>&1

# --- pack -----------------------------------------------------------------------
printf 'Test plugin, packaged.\n' >README.md
expect "pack writes ID-VERSION.sbpkg and says who signed it" 0 "packed testplugin 1\.0\.0 \(2 files\), signed by $pub" \
  "$SB" plugins pack "$PLUGINS/testplugin.so" --key acme.key --add README.md
check "the package is a tar of the manifest, its signature, the plugin and the added file" \
  '[ "$(tar tzf testplugin-1.0.0.sbpkg | tr "\n" " ")" = "manifest.json manifest.sig testplugin.so README.md " ]'
tar xzf testplugin-1.0.0.sbpkg manifest.json
check "the manifest names the plugin, its ABI and every file's hash" \
  "python3 -c 'import json; m = json.load(open(\"manifest.json\")); assert (m[\"id\"], m[\"version\"], m[\"publisher\"], m[\"abi\"][:2]) == (\"testplugin\", \"1.0.0\", \"Switchboard tests\", \"1.\"); assert [f[\"path\"] for f in m[\"files\"]] == [\"testplugin.so\", \"README.md\"] and all(len(f[\"blake2b\"]) == 64 for f in m[\"files\"])'"
cp "$PLUGINS/testplugin.so" other.so
expect "a plugin file not named after its id is not packed" 2 'declares id "testplugin"; the file must be named testplugin.so' \
  "$SB" plugins pack other.so --key acme.key
expect "a file the daemon would refuse is not packed" 2 'wrong magic' "$SB" plugins pack "$PLUGINS/bad_magic.so" --key acme.key
expect "a plugin whose version is not semantic is not packed" 2 'declares version "banana", not a semantic version' \
  "$SB" plugins pack "$PLUGINS/misbehaving/odd_version.so" --key acme.key
expect "pack needs a key" 2 'give one plugin file and --key' "$SB" plugins pack "$PLUGINS/testplugin.so"
expect "a key file that is not a key is refused" 2 'is not a signing key' "$SB" plugins pack "$PLUGINS/testplugin.so" --key README.md
expect "a file cannot be added under the manifest's name" 2 'cannot go into a package' \
  "$SB" plugins pack "$PLUGINS/testplugin.so" --key acme.key --add manifest.json -o x.sbpkg

# --- verify ---------------------------------------------------------------------
expect "verify refuses a signer nobody trusts" 2 "signed by $pub, which is not a trusted key" \
  "$SB" plugins verify testplugin-1.0.0.sbpkg
expect "verify with the .pub file trusted" 0 "testplugin 1\.0\.0 by Switchboard tests: 2 files, signed by $pub \(trusted\)" \
  "$SB" plugins verify testplugin-1.0.0.sbpkg --trust acme.pub
expect "verify with the key's hex trusted" 0 '\(trusted\)' "$SB" plugins verify --trust "$pub" testplugin-1.0.0.sbpkg
expect "another key is not the signer" 2 'not a trusted key' "$SB" plugins verify testplugin-1.0.0.sbpkg --trust other.pub
expect "--trust must be a key" 2 'neither 64 hexadecimal digits nor a .pub file' \
  "$SB" plugins verify testplugin-1.0.0.sbpkg --trust 1234
expect "a missing package is a runtime failure" 1 'cannot read nope.sbpkg' "$SB" plugins verify nope.sbpkg --trust acme.pub

# Rewrites the package: python3 EDIT makes out.sbpkg from the entries (name, bytes) in `e`;
# resign(F) has F change the manifest (a dict), which acme.key then signs again (openssl's Ed25519).
tamper() {
  python3 - testplugin-1.0.0.sbpkg out.sbpkg "$1" <<'PY'
import base64, io, json, subprocess, sys, tarfile
src, dst, edit = sys.argv[1:4]
with tarfile.open(src, "r:gz") as t:
    e = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
def resign(change):
    m = json.loads(e[0][1])
    change(m)
    e[0] = ("manifest.json", json.dumps(m).encode())
    seed = bytes.fromhex(open("acme.key").read().strip())[:32]  # libsodium's secret key: seed, then public key
    der = bytes.fromhex("302e020100300506032b657004220420") + seed
    with open("resign.pem", "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" % base64.b64encode(der).decode())
    with open("resign.json", "wb") as f:
        f.write(e[0][1])
    sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", "resign.pem", "-in", "resign.json"],
                         check=True, capture_output=True).stdout
    e[1] = ("manifest.sig", json.dumps({"public_key": open("acme.pub").read().strip(), "signature": sig.hex()}).encode())
exec(edit)
with tarfile.open(dst, "w:gz") as t:
    for name, data in e:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
PY
}
# tampered NAME STATUS PATTERN EDIT: verify (trusting acme) the package as EDIT rewrote it
tampered() {
  tamper "$4"
  expect "$1" "$2" "$3" "$SB" plugins verify out.sbpkg --trust acme.pub
}
tampered "the same entries written again by another tar still verify" 0 '\(trusted\)' 'pass'
tampered "a plugin changed after signing is refused" 2 'testplugin.so does not match the manifest.s size and hash' \
  'e[2] = (e[2][0], e[2][1][:-1] + bytes([e[2][1][-1] ^ 1]))'
tampered "a manifest changed after signing is refused" 2 'the signature does not match the manifest' \
  'e[0] = (e[0][0], e[0][1].replace(b"1.0.0", b"9.9.9"))'
tampered "an entry the manifest does not list is refused, by name" 2 'entry 5, extra.so, is not in the manifest' \
  'e.append(("extra.so", b"x"))'
tampered "a listed file the package lacks is refused, by name" 2 'the manifest lists README.md, which the package does not hold' \
  'del e[3]'
tampered "a manifest signed again by its key verifies (the test's signing is sound)" 0 '\(trusted\)' \
  'resign(lambda m: None)'
tampered "a signed manifest whose version is not semantic is refused" 2 'version "banana" is not a semantic version' \
  'resign(lambda m: m.update(version="banana"))'
tampered "a package built for another major ABI is refused" 2 'built for ABI 2\.0; this switchboard runs ABI 1\.0 to 1\.' \
  'resign(lambda m: m.update(abi="2.0"))'
tampered "a package built for a newer minor ABI is refused" 2 'built for ABI 1\.99; .*(upgrade switchboard)' \
  'resign(lambda m: m.update(abi="1.99"))'
tampered "a manifest without its ABI is refused" 2 'not one this switchboard reads' \
  'resign(lambda m: m.pop("abi"))'
tampered "a path that climbs out of the package is refused" 2 'not a plain file with a plain name' \
  'e[3] = ("../README.md", e[3][1])'
tampered "the manifest and its signature come first" 2 'must start with manifest.json and manifest.sig' \
  'e[0], e[1] = e[1], e[0]'
printf 'not a package' >junk.sbpkg
expect "a file that is not a package is refused" 2 'is not a plugin package' "$SB" plugins verify junk.sbpkg --trust acme.pub

# --- install --------------------------------------------------------------------
mkdir plugins
cat >trusting.json <<EOF
{"store": "sqlite:$work/db.sqlite", "plugins": {"dirs": ["plugins"], "allow": ["testplugin"], "trusted_keys": ["$pub"]}}
EOF
cat >distrusting.json <<EOF
{"store": "sqlite:$work/db.sqlite", "plugins": {"dirs": ["plugins"], "allow": ["testplugin"], "trusted_keys": ["$(cat other.pub)"]}}
EOF
expect "install refuses a package no trusted key signed, writing nothing" 2 'not a trusted key' \
  "$SB" plugins install testplugin-1.0.0.sbpkg -c distrusting.json
check "nothing was installed" '[ -z "$(ls plugins)" ]'
expect "install verifies with the config's trusted keys and writes ID.so into its first plugin directory" 0 \
  "installed testplugin 1\.0\.0 \(signed by $pub\) as \./plugins/testplugin.so; restart the daemon" \
  "$SB" plugins install testplugin-1.0.0.sbpkg -c trusting.json
check "the installed file is the packaged plugin" 'cmp -s plugins/testplugin.so "$PLUGINS/testplugin.so"'
expect "the daemon's loader finds the installed plugin" 0 'testplugin +1\.0\.0' "$SB" plugins list -c trusting.json
expect "installing again replaces the file" 0 'replacing the file there' \
  "$SB" plugins install testplugin-1.0.0.sbpkg -c trusting.json
tamper 'resign(lambda m: m.update(abi="1.0"))'
expect "install refuses a plugin whose real ABI is not its manifest's" 2 \
  'the packaged plugin is testplugin 1\.0\.0 \(ABI 1\.[0-9]+\), not the manifest.s testplugin 1\.0\.0 \(ABI 1\.0\)' \
  "$SB" plugins install out.sbpkg -c trusting.json
expect "verify -c trusts the config's keys" 0 '\(trusted\)' "$SB" plugins verify -c trusting.json testplugin-1.0.0.sbpkg

# plugins.require_signed: the loader takes only files a trusted package installed, as they were signed
check "install keeps the signed manifest beside the file" '[ -s plugins/testplugin.so.sig ]'
sed 's/"trusted_keys"/"require_signed": true, "trusted_keys"/' trusting.json >strict.json
sed 's/"trusted_keys"/"require_signed": true, "trusted_keys"/' distrusting.json >strict-other.json
expect "with require_signed an installed plugin loads" 0 'testplugin +1\.0\.0' "$SB" plugins list -c strict.json
expect "a signer the config no longer trusts is refused at load" 0 'refused: plugin file .*testplugin.so refused \(plugins.require_signed\): .* not a trusted key' \
  "$SB" plugins list -c strict-other.json
cp plugins/testplugin.so.sig saved.sig
printf 'x' >>plugins/testplugin.so
expect "a file changed after it was installed is refused at load" 0 'does not match its signed manifest' \
  "$SB" plugins list -c strict.json
expect "without require_signed the same file still loads (the default)" 0 'testplugin +1\.0\.0' "$SB" plugins list -c trusting.json
cp "$PLUGINS/testplugin.so" plugins/testplugin.so
rm plugins/testplugin.so.sig
expect "a plugin file without a signature is refused at load" 0 'has no signature .*switchboard plugins install' \
  "$SB" plugins list -c strict.json
cp saved.sig plugins/testplugin.so.sig
sed 's/"plugins"/"channels": [{"name": "t", "plugin": "testplugin", "credentials": {"token": "abcdef"}}], "plugins"/' \
  strict-other.json >strict-channel.json
expect "check refuses a config whose channel needs a plugin refused for its signature" 2 'not a trusted key' \
  "$SB" check -c strict-channel.json
expect "install needs a config" 2 'give one package and -c FILE' "$SB" plugins install testplugin-1.0.0.sbpkg
cat >badkey.json <<EOF
{"plugins": {"dirs": ["plugins"], "trusted_keys": ["abc"]}}
EOF
expect "a trusted key that is not one is a config error naming it" 2 'plugins.trusted_keys item 1 must be an Ed25519 public key' \
  "$SB" check -c badkey.json
expect "the plugins help names the package commands" 0 'plugins keygen\|pack\|verify\|install' "$SB" plugins --help
expect "pack --help explains packages" 0 'ID-VERSION.sbpkg' "$SB" plugins pack --help

finish
