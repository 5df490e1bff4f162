#!/usr/bin/env bash
# Debian packages the tests need: Chromium for the browser tests (Playwright drives it; nothing is
# downloaded by Playwright) and CJK fonts to render the Chinese text the OCR tests read back.
set -euo pipefail
chromium=${ASSISTANT_TEST_CHROMIUM:-/usr/bin/chromium}
if [ -x "$chromium" ] && fc-list 2>/dev/null | grep -q "Noto Sans CJK\|Noto Serif CJK"; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  chromium fonts-noto-core fonts-noto-cjk fontconfig >/dev/null
