// The Flex Consumption plan and the function app, with the app settings the Functions host itself reads.
//
// Shape from Microsoft's Flex Consumption samples (Azure-Samples/azure-functions-flex-consumption-samples,
// IaC/bicep/main.bicep; Azure-Samples/functions-quickstart-python-http-azd, infra/app/api.bicep): the runtime,
// scale limits and deployment storage live in `functionAppConfig`, never in app settings or site properties.
// Flex Consumption rejects or ignores many site properties and app settings other plans take (ftpsState,
// alwaysOn, linuxFxVersion, FUNCTIONS_WORKER_RUNTIME, WEBSITE_RUN_FROM_PACKAGE, ...): tests/infra/flex_rules.py
// lists them with their sources and fails when one appears in any template file.

@description('Function app name; also the host name <name>.azurewebsites.net.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags for the plan and the app (the app also gets azd-service-name: api).')
param tags object

@description('Resource id of the app\'s user-assigned identity.')
param identityId string

@description('Client id of the app\'s user-assigned identity.')
param identityClientId string

@description('Storage account of the host and the gateway.')
param storageAccountName string

@description('Blob container the app package is deployed to.')
param deploymentContainerName string

@description('Application Insights resource the app sends telemetry to.')
param appInsightsName string

@description('The gateway\'s app settings (name/value pairs, main.bicep\'s appSettings); the host\'s are added here.')
param appSettings array

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance in MB.')
param instanceMemoryMB int

// The official samples' bounds (azure-functions-flex-consumption-samples, IaC/bicep/main.bicep: @minValue(40)
// @maxValue(1000)); see main.bicep's maximumInstanceCount for why 40.
@minValue(40)
@maxValue(1000)
@description('Upper bound on instances per scale group.')
param maximumInstanceCount int

@description('Spread the plan across availability zones.')
param zoneRedundant bool

var blobEndpoint = 'https://${storageAccountName}.blob.${environment().suffixes.storage}'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// What the Functions host reads: its storage connection (identity-based; the account refuses shared keys) and
// telemetry with Entra auth (local auth is disabled on the Application Insights resource).
var hostSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: blobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: 'https://${storageAccountName}.table.${environment().suffixes.storage}'
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:Zone redundancy is the zoneRedundant parameter, off by default: on Flex Consumption it keeps at least two always-ready instances billed around the clock, and an idle gateway should cost nothing.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:The API is public by design: existing SMS clients call it from the internet, authenticated by the gateway's API keys.
  // checkov:skip=CKV_AZURE_17:Existing SMS clients authenticate with an API key over TLS and present no client certificate.
  // checkov:skip=CKV_AZURE_212:numberOfWorkers is a Dedicated-plan setting; Flex Consumption scales instances from zero on demand.
  // checkov:skip=CKV_AZURE_213:App Service health check is built for fixed instance pools; this plan scales to zero, so probe the gateway's health route with an Application Insights availability test instead (docs/deploy.md).
  // checkov:skip=CKV_AZURE_78:Flex Consumption has no FTP endpoint and rejects siteConfig.ftpsState ("FTPS not supported", Flex Consumption plan deprecations; microsoft/azure-pipelines-tasks#21032), so FTP cannot be turned off because it does not exist.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    // TLS 1.2 and HTTP/2 only: neither is on the Flex Consumption deprecation list (functions-app-settings,
    // "Flex Consumption plan deprecations"). scmMinTlsVersion is left to its platform default (1.2).
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
      appSettings: concat(hostSettings, appSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
