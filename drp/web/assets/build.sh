#!/usr/bin/env bash
# `make assets`: GOV.UK Frontend's compiled CSS and JavaScript, vendored under the web app's
# static files (drp/web/static/govuk/), so the app needs no Node to run. Maintainers run it
# when the pinned version changes (GOVUK_FRONTEND below, matched to govuk-frontend-jinja's in
# pyproject.toml); the output is committed.
#
# The CSS is compiled from the package's own Sass with two settings of drp's: the system font
# in place of GDS Transport (its licence is for services on GOV.UK, which a council's drp is
# not), and the assets path under /static/govuk/. No font files are vendored.
set -euo pipefail
GOVUK_FRONTEND=6.3.0   # govuk-frontend-jinja 4.1.0 is made for this version
SASS=1.83.4
cd "$(dirname "$0")/../../.."
out=drp/web/static/govuk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v npm >/dev/null 2>&1 || { echo "make assets: npm is needed (apt-get install npm)" >&2; exit 1; }
(cd "$work" && npm init -y >/dev/null && npm install --silent --no-save --no-package-lock \
    "govuk-frontend@$GOVUK_FRONTEND" "sass@$SASS" >/dev/null)
cp drp/web/assets/drp-govuk.scss "$work/drp-govuk.scss"
(cd "$work" && npx --no-install sass --no-source-map --style=compressed --load-path=node_modules \
    --quiet-deps drp-govuk.scss govuk-frontend.min.css)
rm -rf "$out" && mkdir -p "$out/assets/images"
pkg="$work/node_modules/govuk-frontend"
cp "$work/govuk-frontend.min.css" "$out/"
cp "$pkg/dist/govuk/govuk-frontend.min.js" "$out/"
# The images the components' CSS refers to; not the crown, the favicons or the fonts.
grep -o 'images/[a-z0-9-]*\.[a-z]*' "$out/govuk-frontend.min.css" | sort -u | while read -r img; do
  cp "$pkg/dist/govuk/assets/$img" "$out/assets/$img"
done
{
  echo "GOV.UK Frontend $GOVUK_FRONTEND (the npm package govuk-frontend), compiled by drp's"
  echo "drp/web/assets/build.sh. https://github.com/alphagov/govuk-frontend"
  echo
  sed -n '/^## Licence/,/^## /p' "$pkg/README.md" | sed '$d'
  echo "The MIT License (MIT)"
  echo
  echo "Copyright (c) 2018 Crown Copyright (Government Digital Service)"
  echo
  cat <<'MIT'
Permission is hereby granted, free of charge, to any person obtaining a copy of this software
and associated documentation files (the "Software"), to deal in the Software without
restriction, including without limitation the rights to use, copy, modify, merge, publish,
distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
MIT
} > "$out/LICENCE.txt"
echo "$GOVUK_FRONTEND" > "$out/VERSION"
echo "make assets: GOV.UK Frontend $GOVUK_FRONTEND in $out"
