// proof.js checks, in the reader's browser and with WebCrypto only, that
// a build page's build is in the log, so that the page need not be
// trusted: it fetches the event the page names (/event/N), the latest
// checkpoint (/checkpoint) and the log key (/log/key), verifies the
// checkpoint's Ed25519 signature (C2SP signed note), hashes the event into
// its RFC 6962 leaf and checks the inclusion proof (/proof/inclusion)
// against the checkpoint's root hash (RFC 9162, 2.1.3.2). What it shows is
// its own conclusion; the log key it names is the one to compare with the
// key one trusts.
(function () {
  'use strict';
  var te = new TextEncoder();
  function b64(s) { return Uint8Array.from(atob(s), function (c) { return c.charCodeAt(0); }); }
  function concat() {
    var n = 0, i, o = 0;
    for (i = 0; i < arguments.length; i++) n += arguments[i].length;
    var out = new Uint8Array(n);
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], o); o += arguments[i].length; }
    return out;
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  async function sha256(data) { return new Uint8Array(await crypto.subtle.digest('SHA-256', data)); }

  // rootFromInclusion computes the root that an inclusion proof of the
  // leaf hash at index leads to in a tree of size leaves (RFC 9162,
  // 2.1.3.2); index and size are BigInts.
  async function rootFromInclusion(index, size, leaf, proof) {
    if (index >= size) throw new Error('the leaf index ' + index + ' is not below the tree size ' + size);
    var fn = index, sn = size - 1n, r = leaf;
    for (var i = 0; i < proof.length; i++) {
      var p = proof[i];
      if (p.length !== 32) throw new Error('a proof hash is not 32 bytes');
      if (sn === 0n) throw new Error('the proof is too long');
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(concat([1], p, r));
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await sha256(concat([1], r, p));
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error('the proof is too short');
    return r;
  }
  window.buildledgerRootFromInclusion = rootFromInclusion;

  // verifyNote checks a C2SP signed note against a verifier key
  // "name+hash+base64(0x01 || Ed25519 public key)" and returns the note's
  // text.
  async function verifyNote(note, vkey) {
    // name+hash+base64: the name has no "+", the base64 may.
    var m0 = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+\/=]+)$/.exec(vkey.trim());
    if (!m0) throw new Error('the log key is not a note verifier key');
    var parts = [m0[1], m0[2], m0[3]];
    var key = b64(parts[2]);
    if (key.length !== 33 || key[0] !== 1) throw new Error('the log key is not an Ed25519 key');
    var hash = parts[1];
    var split = note.lastIndexOf('\n\n');
    if (split < 0) throw new Error('the checkpoint is not a signed note');
    var text = note.slice(0, split + 1);
    var pub = await crypto.subtle.importKey('raw', key.slice(1), { name: 'Ed25519' }, false, ['verify']);
    var lines = note.slice(split + 2).split('\n');
    for (var i = 0; i < lines.length; i++) {
      var m = /^\u2014 (\S+) (\S+)$/.exec(lines[i]);
      if (!m || m[1] !== parts[0]) continue;
      var sig = b64(m[2]);
      var id = Array.from(sig.slice(0, 4), function (x) { return x.toString(16).padStart(2, '0'); }).join('');
      if (id !== hash || sig.length !== 68) continue;
      if (await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig.slice(4), te.encode(text))) return text;
    }
    throw new Error('the checkpoint carries no valid signature of the log key ' + parts[0] + '+' + hash);
  }

  async function fetchOK(url) {
    var r = await fetch(url, { cache: 'no-store' });
    if (!r.ok) throw new Error(url + ' answered ' + r.status);
    return r;
  }

  async function check(section, say) {
    var index = BigInt(section.dataset.index), uuid = section.dataset.uuid;
    var got = await Promise.all([
      fetchOK('/checkpoint').then(function (r) { return r.text(); }),
      fetchOK('/log/key').then(function (r) { return r.text(); }),
      fetchOK('/event/' + index).then(function (r) { return r.arrayBuffer(); })
    ]);
    var vkey = got[1].trim(), event = new Uint8Array(got[2]);
    var text = await verifyNote(got[0], vkey);
    var lines = text.split('\n');
    var size = BigInt(lines[1]), root = b64(lines[2]);
    if (index >= size) return 'later';
    var ev = JSON.parse(new TextDecoder().decode(event));
    if (ev.kind !== 'build_recorded' || ev.uuid !== uuid || ev.job !== section.dataset.job || ev.platform !== section.dataset.platform) {
      throw new Error('event ' + index + ' of the log is not the record of build ' + uuid + ' of ' + section.dataset.job + ' on ' + section.dataset.platform);
    }
    // What the page shows of the build's files is what the record says.
    var logged = {};
    (ev.artifacts || []).forEach(function (a) { logged[a.path] = a.sha256; });
    var rows = document.querySelectorAll('tr.artifact');
    if (rows.length !== (ev.artifacts || []).length) throw new Error('the page lists ' + rows.length + ' files, the record ' + (ev.artifacts || []).length);
    for (var i = 0; i < rows.length; i++) {
      if (logged[rows[i].dataset.path] !== rows[i].dataset.sha256) throw new Error('the page shows ' + rows[i].dataset.path + ' with another digest than the record');
    }
    var proof = await (await fetchOK('/proof/inclusion?index=' + index + '&size=' + size)).json();
    var hashes = (proof.hashes || []).map(b64);
    var got2 = await rootFromInclusion(index, size, await sha256(concat([0], event)), hashes);
    if (!equal(got2, root)) throw new Error('the inclusion proof does not lead to the root hash of the checkpoint');
    say(true, 'Verified in your browser: build ' + uuid + ' is event ' + index + ' of the log, and the ' + rows.length +
      ' files this page lists are the ones it records. The record hashes, with the inclusion proof, to the root hash of checkpoint ' +
      size + ' of ' + lines[0] + ', signed by the log key ' + vkey + '. This script comes from the same server: compare that key with the one you trust, or check with `ledger lookup` and a pinned key.');
    return 'done';
  }

  function start() {
    var section = document.getElementById('proof');
    var status = document.getElementById('proof-status');
    if (!section || !status) return;
    var say = function (ok, text) { status.textContent = text; status.className = ok ? 'ok' : 'bad'; };
    if (!window.crypto || !crypto.subtle) { say(false, 'Not checked: this browser offers no WebCrypto here (it needs HTTPS or localhost).'); return; }
    var tries = 0;
    function attempt() {
      check(section, say).then(function (r) {
        if (r !== 'later') return;
        if (++tries >= 30) { say(false, 'Not checked: the latest checkpoint does not cover this build yet (the server is catching up); reload later.'); return; }
        status.textContent = 'This build is newer than the latest checkpoint this server has; checking again shortly…';
        setTimeout(attempt, 2000);
      }).catch(function (e) { say(false, 'FAILED: ' + e.message + '. Do not trust what this page says about the build.'); });
    }
    attempt();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
