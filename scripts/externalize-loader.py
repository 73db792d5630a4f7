#!/usr/bin/env python3
"""Trunk post-build hook: move Trunk's inline module loader out of index.html.

The page's Content-Security-Policy allows scripts from its own origin only
(`script-src 'self'`), so the inline `<script type="module">` that Trunk writes
would be blocked. This writes its body to `boot.js` and references that file.
"""
import os
import re
import sys

staging = os.environ["TRUNK_STAGING_DIR"]
index = os.path.join(staging, "index.html")
html = open(index, encoding="utf-8").read()
inline = re.compile(r'<script type="module"(?:\s+nonce="[^"]*")?>(.*?)</script>', re.S)
scripts = inline.findall(html)
if len(scripts) != 1:
    sys.exit(f"externalize-loader: expected one inline module script, found {len(scripts)}")
with open(os.path.join(staging, "boot.js"), "w", encoding="utf-8") as f:
    f.write(scripts[0].strip() + "\n")
html = inline.sub('<script type="module" src="./boot.js"></script>', html, count=1)
open(index, "w", encoding="utf-8").write(html)
