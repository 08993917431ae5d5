#!/bin/sh
# After provisioning: wait until the app's Key Vault references resolve, then restart the app so it reads them.
#
# The template grants the app's identity Key Vault Secrets User in the same deployment that sets the references,
# and a new role assignment takes minutes to apply (up to 10, Key Vault's RBAC guide). Until then App Service
# passes the reference text itself, "@Microsoft.KeyVault(...)", and it re-reads references only every 24 hours or
# on a configuration change ("Use Key Vault references as app settings", Understand rotation / Troubleshoot); the
# gateway refuses to start on such a value. So this asks App Service to resolve them again (POST
# .../config/configreferences/appsettings/refresh, api-version 2022-03-01, the documented way to force it), reads
# their status (GET .../config/configreferences/appsettings, "Get App Settings Key Vault References",
# api-version 2024-04-01) until every one is Resolved, and then restarts the app. The wait is bounded: a reference
# that never resolves ends with a message naming the setting and its status.
#
# Run by azd as the postprovision hook (azure.yaml) and by infra/deploy.sh. Reads, from the environment:
#   FUNCTION_APP_NAME                  the app (a template output: azd stores it in the environment)
#   AZURE_RESOURCE_GROUP               its resource group
#   AZURE_SUBSCRIPTION_ID              the subscription (default: the Azure CLI's current one)
#   SMS_VAULT_REFERENCE_WAIT_SECONDS   how long to wait for the references (default 900)
#   SMS_VAULT_REFERENCE_POLL_SECONDS   how often to look (default 20)
# Needs the Azure CLI, signed in (az login). infra/hooks/resolve-vault-references.ps1 is its twin for Windows.
set -eu

REFRESH_API_VERSION=2022-03-01
STATUS_API_VERSION=2024-04-01

fail() {
  echo "resolve-vault-references: $*" >&2
  exit 1
}

whole_number() {
  case $2 in
    '' | *[!0-9]*) fail "$1 must be a whole number of seconds, not '$2'" ;;
  esac
}

app=${FUNCTION_APP_NAME:-}
group=${AZURE_RESOURCE_GROUP:-}
wait_seconds=${SMS_VAULT_REFERENCE_WAIT_SECONDS:-900}
poll_seconds=${SMS_VAULT_REFERENCE_POLL_SECONDS:-20}
[ -n "$app" ] || fail "FUNCTION_APP_NAME is not set (the deployment's output; run after provisioning)"
[ -n "$group" ] || fail "AZURE_RESOURCE_GROUP is not set"
whole_number SMS_VAULT_REFERENCE_WAIT_SECONDS "$wait_seconds"
whole_number SMS_VAULT_REFERENCE_POLL_SECONDS "$poll_seconds"
[ "$poll_seconds" -ge 1 ] || fail "SMS_VAULT_REFERENCE_POLL_SECONDS must be at least 1"
command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is not installed"

subscription=${AZURE_SUBSCRIPTION_ID:-}
if [ -z "$subscription" ]; then
  subscription=$(az account show --query id -o tsv) || fail "not signed in to the Azure CLI: run az login"
fi
site="https://management.azure.com/subscriptions/$subscription/resourceGroups/$group/providers/Microsoft.Web/sites/$app"
rerun="FUNCTION_APP_NAME=$app AZURE_RESOURCE_GROUP=$group sh infra/hooks/resolve-vault-references.sh"
tab=$(printf '\t')

# "SETTING: status" lines for the references not yet resolved, from the status query's "<id>\t<status>" rows
# (the id ends with the setting's name).
describe() {
  while IFS="$tab" read -r id status; do
    [ -n "$id" ] && echo "  ${id##*/}: $status"
  done <<EOF
$1
EOF
}

echo "==> Key Vault references of $app: waiting for them to resolve (at most $wait_seconds s)"
deadline=$(($(date +%s) + wait_seconds))
while :; do
  az rest --method post --url "$site/config/configreferences/appsettings/refresh?api-version=$REFRESH_API_VERSION" \
    -o none || echo "warning: App Service did not take the refresh request; reading the status anyway" >&2
  if pending=$(az rest --method get --url "$site/config/configreferences/appsettings?api-version=$STATUS_API_VERSION" \
    --query "value[?properties.status != 'Resolved'].[id, properties.status]" -o tsv); then
    [ -n "$pending" ] || break
    summary=$(describe "$pending")
    case $pending in
      *"${tab}InvalidSyntax"* | *"${tab}SecretNotFound"* | *"${tab}SecretVersionNotFound"*)
        # Waiting cannot mend these: the reference or the secret itself is wrong.
        fail "these app settings of $app reference what the vault does not hold:
$summary
Put the secret in the vault (docs/deploy.md, \"Providers and secrets\") or stop referencing it, then run: $rerun"
        ;;
    esac
  else
    summary="  (their status could not be read: the error is above)"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    fail "after $wait_seconds s these app settings of $app still hold unresolved Key Vault references:
$summary
The app refuses to start while a setting holds one. AccessToKeyVaultDenied means its identity cannot read the
vault yet: check that the app's identity (id-<token> in $group) has Key Vault Secrets User on the vault
(az role assignment list --all --assignee <its principal id> -o table); a new assignment can take minutes to apply.
Then run: $rerun"
  fi
  echo "    not yet resolved:$(printf "%s" "$summary" | tr -s " \n" " ")"
  sleep "$poll_seconds"
done

references=$(az rest --method get --url "$site/config/configreferences/appsettings?api-version=$STATUS_API_VERSION" \
  --query "length(value)" -o tsv) || references=""
if [ "${references:-0}" -eq 0 ]; then
  echo "    no Key Vault references: nothing to restart"
  exit 0
fi
echo "    all $references resolved; restarting $app so it reads them"
az functionapp restart --resource-group "$group" --name "$app" -o none || fail "restarting $app failed (the error is above)"
