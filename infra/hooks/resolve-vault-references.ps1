#!/usr/bin/env pwsh
# Twin of infra/hooks/resolve-vault-references.sh for azd on Windows (PowerShell 7); that script says why, which
# APIs and what it reads. After provisioning: wait until the app's Key Vault references resolve (bounded), then
# restart the app so it reads them.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$RefreshApiVersion = '2022-03-01'
$StatusApiVersion = '2024-04-01'

function Fail([string] $Message) {
    [Console]::Error.WriteLine("resolve-vault-references: $Message")
    exit 1
}

# az's JSON answer as an object ('' when it printed nothing); $null when az failed (its error is already on the
# screen). The leading comma returns an array whole: PowerShell would unroll an empty one into $null.
function Invoke-Az([string[]] $Arguments) {
    $text = & az @Arguments -o json | Out-String
    if ($LASTEXITCODE -ne 0) { return $null }
    if (-not $text.Trim()) { return '' }
    return , (ConvertFrom-Json -InputObject $text -NoEnumerate)
}

function Get-Seconds([string] $Name, [string] $Value, [int] $Default) {
    if (-not $Value) { return $Default }
    if ($Value -notmatch '^[0-9]+$') { Fail "$Name must be a whole number of seconds, not '$Value'" }
    return [int] $Value
}

$app = $env:FUNCTION_APP_NAME
$group = $env:AZURE_RESOURCE_GROUP
if (-not $app) { Fail 'FUNCTION_APP_NAME is not set (the deployment''s output; run after provisioning)' }
if (-not $group) { Fail 'AZURE_RESOURCE_GROUP is not set' }
$waitSeconds = Get-Seconds 'SMS_VAULT_REFERENCE_WAIT_SECONDS' $env:SMS_VAULT_REFERENCE_WAIT_SECONDS 900
$pollSeconds = Get-Seconds 'SMS_VAULT_REFERENCE_POLL_SECONDS' $env:SMS_VAULT_REFERENCE_POLL_SECONDS 20
if ($pollSeconds -lt 1) { Fail 'SMS_VAULT_REFERENCE_POLL_SECONDS must be at least 1' }
if (-not (Get-Command az -ErrorAction SilentlyContinue)) { Fail 'the Azure CLI (az) is not installed' }

$subscription = $env:AZURE_SUBSCRIPTION_ID
if (-not $subscription) {
    $account = Invoke-Az @('account', 'show')
    if ($null -eq $account) { Fail 'not signed in to the Azure CLI: run az login' }
    $subscription = $account.id
}
$site = "https://management.azure.com/subscriptions/$subscription/resourceGroups/$group/providers/Microsoft.Web/sites/$app"
$rerun = "`$env:FUNCTION_APP_NAME='$app'; `$env:AZURE_RESOURCE_GROUP='$group'; pwsh infra/hooks/resolve-vault-references.ps1"

Write-Host "==> Key Vault references of ${app}: waiting for them to resolve (at most $waitSeconds s)"
$deadline = (Get-Date).AddSeconds($waitSeconds)
while ($true) {
    if ($null -eq (Invoke-Az @('rest', '--method', 'post', '--url', "$site/config/configreferences/appsettings/refresh?api-version=$RefreshApiVersion"))) {
        [Console]::Error.WriteLine('warning: App Service did not take the refresh request; reading the status anyway')
    }
    $references = Invoke-Az @('rest', '--method', 'get', '--url', "$site/config/configreferences/appsettings?api-version=$StatusApiVersion")
    if ($null -ne $references -and $references -isnot [string]) {
        $all = @($references.value)
        $pending = @($all | Where-Object { $_.properties.status -ne 'Resolved' })
        if ($pending.Count -eq 0) { break }
        # The id ends with the setting's name.
        $summary = ($pending | ForEach-Object { "  $(($_.id -split '/')[-1]): $($_.properties.status)" }) -join "`n"
        if (@($pending | Where-Object { $_.properties.status -in @('InvalidSyntax', 'SecretNotFound', 'SecretVersionNotFound') }).Count -gt 0) {
            # Waiting cannot mend these: the reference or the secret itself is wrong.
            Fail "these app settings of $app reference what the vault does not hold:`n$summary`nPut the secret in the vault (docs/deploy.md, `"Providers and secrets`") or stop referencing it, then run: $rerun"
        }
    } else {
        $summary = '  (their status could not be read: the error is above)'
    }
    if ((Get-Date) -ge $deadline) {
        Fail ("after $waitSeconds s these app settings of $app still hold unresolved Key Vault references:`n$summary`n" +
            "The app refuses to start while a setting holds one. AccessToKeyVaultDenied means its identity cannot read the`n" +
            "vault yet: check that the app's identity (id-<token> in $group) has Key Vault Secrets User on the vault`n" +
            "(az role assignment list --all --assignee <its principal id> -o table); a new assignment can take minutes to apply.`n" +
            "Then run: $rerun")
    }
    Write-Host "    not yet resolved: $(($summary -split "`n" | ForEach-Object { $_.Trim() }) -join '; ')"
    Start-Sleep -Seconds $pollSeconds
}

if ($all.Count -eq 0) {
    Write-Host '    no Key Vault references: nothing to restart'
    exit 0
}
Write-Host "    all $($all.Count) resolved; restarting $app so it reads them"
if ($null -eq (Invoke-Az @('functionapp', 'restart', '--resource-group', $group, '--name', $app))) {
    Fail "restarting $app failed (the error is above)"
}
