#!/usr/bin/env bash
# A minimal chat bridge: relays one person's yes/no to opsgate.
#
#   OPSGATE_URL=http://127.0.0.1:8700 OPSGATE_TOKEN=… \
#     ./relay-decision.sh PLAN_ID yes|no SENDER_ID ["reason"]
#
# The plan hash is fetched first, so the decision is bound to the plan the
# person saw. With OPSGATE_SIGNING_SECRET set, the request is signed
# (X-Opsgate-Timestamp, X-Opsgate-Signature: sha256=HMAC(secret, "ts.body")).
# Needs curl, jq and openssl.
set -euo pipefail
url="${OPSGATE_URL:-http://127.0.0.1:8700}"
plan="$1" decision="$2" sender="$3" reason="${4:-}"
auth=(-H "Authorization: Bearer ${OPSGATE_TOKEN:?set OPSGATE_TOKEN}")

hash=$(curl -fsS "${auth[@]}" "$url/v1/plans/$plan" | jq -r .state.plan_hash)
body=$(jq -cn --arg d "$decision" --arg h "$hash" --arg s "$sender" --arg r "$reason" \
    '{decision: $d, plan_hash: $h, sender_id: $s} + (if $r == "" then {} else {reason: $r} end)')

sign=()
if [ -n "${OPSGATE_SIGNING_SECRET:-}" ]; then
    ts=$(date +%s)
    sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$OPSGATE_SIGNING_SECRET" -r | cut -d' ' -f1)
    sign=(-H "X-Opsgate-Timestamp: $ts" -H "X-Opsgate-Signature: sha256=$sig")
fi

curl -sS "${auth[@]}" "${sign[@]}" -H 'Content-Type: application/json' \
    -d "$body" "$url/v1/plans/$plan/decision"
echo
