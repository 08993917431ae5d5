#!/usr/bin/env pwsh
# Twin of infra/hooks/check-app-name.sh for azd on Windows (PowerShell 7); that script says why and what it reads.
# Before anything is created: stop when the function app's name belongs to another app, and say how to cut over.
# Answers are read as JSON (ConvertFrom-Json) and the request body goes in a file, so nothing with quotes passes
# through az.cmd's command line.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

# The template's default (infra/bicep/main.bicep, functionAppName); tests/infra checks the two agree.
$PRODUCTION_NAME = 'production-eros-gateway-api-sms-wa'
$ApiVersion = '2024-04-01'

function Fail([string] $Message) {
    [Console]::Error.WriteLine("check-app-name: $Message")
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

$name = if ($env:SMS_FUNCTION_APP_NAME) { $env:SMS_FUNCTION_APP_NAME } else { $PRODUCTION_NAME }
$envName = $env:AZURE_ENV_NAME
$group = $env:AZURE_RESOURCE_GROUP
if (-not $envName) { Fail 'AZURE_ENV_NAME is not set (azd sets it; infra/deploy.sh passes its environment)' }
if (-not (Get-Command az -ErrorAction SilentlyContinue)) { Fail 'the Azure CLI (az) is not installed' }
if ($name -cmatch '^-|-$|[^A-Za-z0-9-]') {
    Fail "'$name' is not a valid app name: use letters, digits and hyphens, not at either end"
}
if ($name.Length -lt 2 -or $name.Length -gt 60) { Fail "'$name' is not a valid app name: use 2 to 60 characters" }

$subscription = $env:AZURE_SUBSCRIPTION_ID
if (-not $subscription) {
    $account = Invoke-Az @('account', 'show')
    if ($null -eq $account) { Fail 'not signed in to the Azure CLI: run az login' }
    $subscription = $account.id
}

$url = "https://management.azure.com/subscriptions/$subscription/providers/Microsoft.Web/checknameavailability?api-version=$ApiVersion"
$bodyFile = New-TemporaryFile
try {
    Set-Content -Path $bodyFile -Value (@{ name = $name; type = 'Microsoft.Web/sites' } | ConvertTo-Json) -Encoding utf8
    $answer = Invoke-Az @('rest', '--method', 'post', '--url', $url, '--body', "@$bodyFile")
} finally {
    Remove-Item -Path $bodyFile -ErrorAction SilentlyContinue
}
if ($null -eq $answer) { Fail "could not ask App Service whether '$name' is free (the error is above); nothing was created" }
if ($answer.nameAvailable -eq $true) {
    Write-Host "App name ${name}: free."
    exit 0
}
if ($answer.reason -eq 'Invalid') { Fail "App Service refuses the name '$name': $($answer.message)" }

# Taken. Fine when it is this environment's own app in the target group: a redeployment.
$holders = Invoke-Az @('resource', 'list', '--name', $name, '--resource-type', 'Microsoft.Web/sites')
if ($null -eq $holders) { Fail "could not look for '$name' in subscription $subscription (the error is above); nothing was created" }
$holder = ''
foreach ($site in @($holders | Where-Object { $_ })) {
    $holder = $site.resourceGroup
    $holderEnv = if ($site.tags -and $site.tags.PSObject.Properties['azd-env-name']) { $site.tags.'azd-env-name' } else { '' }
    if ($holderEnv -ceq $envName -and (-not $group -or $site.resourceGroup -ieq $group)) {
        Write-Host "App name ${name}: this environment's own app (resource group $($site.resourceGroup)); deploying over it."
        exit 0
    }
}

# A name of this environment's own to deploy under first: stable across runs, different per subscription.
$slug = ($envName.ToLowerInvariant() -replace '[^a-z0-9-]', '-')
if ($slug.Length -gt 30) { $slug = $slug.Substring(0, 30) }
$hash = [System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes("$subscription/$envName"))
$interim = "sms-gateway-$slug-" + ([System.Convert]::ToHexString($hash).Substring(0, 8).ToLowerInvariant())
if ($env:SMS_DEPLOY_COMMAND) {
    $deployInterim = "SMS_FUNCTION_APP_NAME=$interim $($env:SMS_DEPLOY_COMMAND)"
    $deployProduction = "SMS_FUNCTION_APP_NAME=$name $($env:SMS_DEPLOY_COMMAND)"
} else {
    $deployInterim = "azd env set SMS_FUNCTION_APP_NAME $interim; azd up"
    $deployProduction = "azd env set SMS_FUNCTION_APP_NAME $name; azd up"
}
$groupShown = if ($group) { $group } else { '<resource group of this environment>' }
if ($holder) {
    $where = "another app in resource group $holder of this subscription holds it"
    $deleteOld = "az resource delete --resource-group $holder --name $name --resource-type Microsoft.Web/sites"
} else {
    $where = "an app outside subscription $subscription holds it"
    $deleteOld = 'delete the old app in the subscription that holds it (portal, or az resource delete there)'
}

[Console]::Error.WriteLine(@"
check-app-name: the app name '$name' is taken: $where.
App names are global (the name is the host $name.azurewebsites.net), so deploying now would fail
half-way. Nothing has been created. Deploy under a name of your own first, then cut over
(docs/deploy.md, "Taking over the production name"):

  1. Deploy under another name, for example:
       $deployInterim
  2. Prove it: create an API key and send a test SMS to https://$interim.azurewebsites.net
     (docs/deploy.md, "Create the first API key" and "Send the first SMS"); give each client its key.
  3. Move the clients without changing their URL, one of:
     a. They call a host name of your own (a CNAME to the old app): redeploy with it as SMS_CUSTOM_DOMAIN (Front Door),
        validate it with the TXT record, then point the CNAME at Front Door (docs/deploy.md, "Custom domain").
     b. They call $name.azurewebsites.net: the name must move, with a few minutes of downtime.
        Flex Consumption runs one app per plan, so remove the interim app first, then the old one,
        then deploy again under the production name at once:
          az functionapp delete --resource-group $groupShown --name $interim
          $deleteOld
          $deployProduction
        The data (tables, queues, API keys) stays in this environment's storage account.
"@)
exit 1
