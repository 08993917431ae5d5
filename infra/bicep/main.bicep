// SMS gateway on Azure Functions Flex Consumption (Python 3.11), identity-only storage access.
//
// Deploys into an existing resource group (azd asks for one; infra/deploy.sh creates it):
//   storage account (tables, queues and the deployment container; shared keys disabled),
//   user-assigned identity with data-plane roles, Log Analytics + Application Insights (Entra auth only),
//   Key Vault in RBAC mode for provider secrets, the Flex Consumption plan and function app,
//   and optionally an Azure Communication Services resource and a custom domain with a managed certificate.
//
// Every app setting the gateway and the host read is in the `appSettings` variable below (a list of name/value
// pairs, the shape siteConfig.appSettings takes): tests/test_infra.py checks it against the app's declared
// settings (gateway/settings.py and each provider's), their parameters' defaults and bounds too, so keep it the
// one place where settings are listed.
//
// Checks that checkov reports and this template deliberately does not follow are suppressed inside the resource
// they concern with a `// checkov:skip=<id>:<reason>` comment, each with its reason.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------
// Parameters: deployment
// ---------------------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd environment or the first argument of infra/deploy.sh); tags resources and seeds their generated names.')
param environmentName string

@description('Region for every resource. It must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@minLength(2)
@maxLength(60)
@description('Function app name; also the host name <name>.azurewebsites.net. The default is the original gateway host, which is only free once the old app is deleted.')
param functionAppName string = 'production-eros-gateway-api-sms-wa'

@allowed([
  512
  2048
  4096
])
@description('Memory of each Flex Consumption instance in MB; CPU is allocated in proportion.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Upper bound on instances the app scales out to: bounds cost and the rate offered to the SMS provider.')
param maximumInstanceCount int = 100

@description('Spread the plan across availability zones. On Flex Consumption the platform then keeps at least two always-ready instances, billed even when idle, and the storage account must be zone-redundant.')
param zoneRedundant bool = false

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Storage redundancy. The account holds the accepted messages, so the default keeps three copies across zones.')
param storageSku string = 'Standard_ZRS'

@description('Key Vault name; the default is generated. Override it when a soft-deleted vault still holds the generated name.')
param keyVaultName string = ''

@description('Turn on Key Vault purge protection (cannot be turned off again; a deleted vault then keeps its name for the retention period).')
param keyVaultPurgeProtection bool = true

@minValue(7)
@maxValue(90)
@description('Days a deleted vault or secret can be recovered.')
param keyVaultSoftDeleteRetentionDays int = 90

@description('Object id of the person or pipeline deploying. When set, it gets Storage Table Data Contributor (to create API keys with `python -m gateway keys create`) and Key Vault Secrets Officer (to put provider secrets in the vault).')
param deployerPrincipalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
@description('Kind of principal deployerPrincipalId is.')
param deployerPrincipalType string = 'User'

@description('Custom host name for the API, for example sms.example.com. Before deploying, create the DNS records: CNAME <host> -> <functionAppName>.azurewebsites.net and TXT asuid.<host> = the app\'s customDomainVerificationId (docs/deploy.md).')
param customDomain string = ''

@description('With customDomain: create a free App Service managed certificate for it and bind it with SNI.')
param customDomainManagedCertificate bool = true

// ---------------------------------------------------------------------------------------------------------
// Parameters: gateway settings (defaults equal the code's defaults in gateway/settings.py)
// ---------------------------------------------------------------------------------------------------------

@minLength(3)
@maxLength(56)
@description('Queue of accepted messages waiting for delivery; the template also creates <name>-poison.')
param smsQueueName string = 'sms-outbound'

@minLength(1)
@maxLength(40)
@description('Prefix of the gateway tables: <prefix>Communications, <prefix>ApiKeys, <prefix>Outbox.')
param smsTablePrefix string = 'Sms'

@allowed([
  'outbox'
  'twilio'
  'acs'
])
@description('Delivery provider, chosen at every deployment (no default: azd and infra/deploy.sh ask for it). twilio or acs send; outbox records each message in the <prefix>Outbox table and sends nothing, and is allowed to run in Azure only when chosen here by name.')
param smsProvider string

@description('Sender used when a request names none (E.164 number or alphanumeric id).')
param smsDefaultSender string = ''

@description('Two-letter region (GB, AU, ...) used to read numbers written without a country code; empty means numbers must be in international form.')
param smsDefaultRegion string = ''

@minValue(1)
@description('Longest message body accepted, in characters.')
param smsMaxBodyLength int = 1600

@minValue(1)
@maxValue(1000)
@description('Most recipients accepted in one request.')
param smsMaxRecipients int = 1000

@minValue(1)
@description('Largest request body accepted, in bytes.')
param smsMaxRequestBytes int = 1048576

@minValue(0)
@description('Seconds an API key lookup is cached per instance (0 turns the cache off).')
param smsApiKeyCacheSeconds int = 60

@allowed([
  'auto'
  'pascal'
  'camel'
])
@description('Property casing of responses: auto answers in the casing of the request (camelCase for the PyPI and npm ServiceStack clients), pascal as the original ServiceStack API, camel always camelCase.')
param smsJsonCasing string = 'auto'

// ---------------------------------------------------------------------------------------------------------
// Parameters: providers. Secrets go to Key Vault; the app reads them through Key Vault references.
// ---------------------------------------------------------------------------------------------------------

@description('Twilio account SID (AC...).')
param twilioAccountSid string = ''

@secure()
@description('Twilio auth token. When given, it is stored in Key Vault as twilio-auth-token.')
param twilioAuthToken string = ''

@description('Twilio API key SID (SK...), an alternative to the auth token.')
param twilioApiKeySid string = ''

@secure()
@description('Twilio API key secret. When given, it is stored in Key Vault as twilio-api-key-secret.')
param twilioApiKeySecret string = ''

@description('Twilio messaging service SID (MG...); when set, Twilio picks the sender.')
param twilioMessagingServiceSid string = ''

@description('URL Twilio posts delivery status to; empty leaves status callbacks off.')
param twilioStatusCallbackUrl string = ''

@description('Twilio API base URL; empty uses the app\'s default.')
param twilioBaseUrl string = ''

@description('Timeout of one Twilio call in seconds; empty uses the app\'s default.')
param twilioTimeoutSeconds string = ''

@description('Endpoint of an existing Communication Services resource (https://<name>.communication.azure.com); the app signs in with its managed identity, which needs a role on that resource (docs/deploy.md).')
param acsEndpoint string = ''

@secure()
@description('Communication Services connection string, an alternative to the endpoint + identity. When given, it is stored in Key Vault as acs-connection-string.')
param acsConnectionString string = ''

@description('Timeout of one Communication Services call in seconds; empty uses the app\'s default.')
param acsTimeoutSeconds string = ''

@description('Create a Communication Services resource and grant the app\'s identity Contributor on it (phone numbers are still bought in the portal).')
param createCommunicationService bool = false

@description('Where a created Communication Services resource keeps its data at rest.')
param communicationServiceDataLocation string = 'United States'

@description('Names of provider secrets already in the vault (put there with az keyvault secret set), for example [\'twilio-auth-token\']. The app settings reference them as well as any secret given as a parameter on this deployment.')
param existingSecretNames array = []

// ---------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
  application: 'sms-gateway'
}
var appName = toLower(functionAppName)
var storageAccountName = 'st${resourceToken}'
var vaultName = empty(keyVaultName) ? 'kv-${resourceToken}' : keyVaultName
var identityName = 'id-${resourceToken}'
var planName = 'plan-${resourceToken}'
var logAnalyticsName = 'log-${resourceToken}'
var appInsightsName = 'appi-${resourceToken}'
var communicationServiceName = 'acs-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var blobEndpoint = 'https://${storageAccountName}.blob.${environment().suffixes.storage}'
var queueEndpoint = 'https://${storageAccountName}.queue.${environment().suffixes.storage}'
var tableEndpoint = 'https://${storageAccountName}.table.${environment().suffixes.storage}'

// The gateway's storage: the names must match gateway/settings.py (Settings.queue_name, poison_queue_name,
// communications_table, api_keys_table, outbox_table); tests/test_infra.py checks it.
var queueNames = [
  smsQueueName
  '${smsQueueName}-poison'
]
var tableNames = [
  '${smsTablePrefix}Communications'
  '${smsTablePrefix}ApiKeys'
  '${smsTablePrefix}Outbox'
]

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
}

// Provider secrets: a setting references its vault secret when the secret was given now or is listed as existing.
var secretNames = {
  twilioAuthToken: 'twilio-auth-token'
  twilioApiKeySecret: 'twilio-api-key-secret'
  acsConnectionString: 'acs-connection-string'
}
var useTwilioAuthToken = !empty(twilioAuthToken) || contains(existingSecretNames, secretNames.twilioAuthToken)
var useTwilioApiKeySecret = !empty(twilioApiKeySecret) || contains(existingSecretNames, secretNames.twilioApiKeySecret)
var useAcsConnectionString = !empty(acsConnectionString) || contains(existingSecretNames, secretNames.acsConnectionString)
var vaultSecretsUri = 'https://${vaultName}${environment().suffixes.keyvaultDns}/secrets'
// The app takes a connection string or an endpoint, not both: a configured connection string wins.
var acsIdentityEndpoint = createCommunicationService ? 'https://${communicationService.properties.hostName}' : acsEndpoint
var acsEndpointValue = useAcsConnectionString ? '' : acsIdentityEndpoint

// ---------------------------------------------------------------------------------------------------------
// App settings: the one list of every setting the app and the host read. Empty values mean "not configured"
// (the app treats an empty setting like a missing one). FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION
// are absent on purpose: Flex Consumption takes the runtime from functionAppConfig and rejects those settings.
// ---------------------------------------------------------------------------------------------------------

var appSettings = [
  // Host and gateway storage, identity-based (no connection string: shared keys are disabled).
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
    value: identity.properties.clientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: blobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: queueEndpoint
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: tableEndpoint
  }
  // Telemetry with Entra auth (local auth is disabled on the Application Insights resource).
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  }
  // Gateway.
  {
    name: 'SMS_QUEUE_NAME'
    value: smsQueueName
  }
  {
    name: 'SMS_TABLE_PREFIX'
    value: smsTablePrefix
  }
  {
    name: 'SMS_PROVIDER'
    value: smsProvider
  }
  {
    name: 'SMS_ALLOW_OUTBOX_IN_AZURE'
    value: smsProvider == 'outbox' ? 'true' : 'false'
  }
  {
    name: 'SMS_DEFAULT_SENDER'
    value: smsDefaultSender
  }
  {
    name: 'SMS_DEFAULT_REGION'
    value: smsDefaultRegion
  }
  {
    name: 'SMS_MAX_BODY_LENGTH'
    value: string(smsMaxBodyLength)
  }
  {
    name: 'SMS_MAX_RECIPIENTS'
    value: string(smsMaxRecipients)
  }
  {
    name: 'SMS_MAX_REQUEST_BYTES'
    value: string(smsMaxRequestBytes)
  }
  {
    name: 'SMS_API_KEY_CACHE_SECONDS'
    value: string(smsApiKeyCacheSeconds)
  }
  {
    name: 'SMS_MAX_DELIVERY_ATTEMPTS'
    value: '5'
  }
  {
    name: 'SMS_RETRY_BASE_SECONDS'
    value: '30'
  }
  {
    name: 'SMS_CLAIM_TIMEOUT_SECONDS'
    value: '60'
  }
  {
    name: 'SMS_SWEEP_AFTER_SECONDS'
    value: '60'
  }
  {
    // Empty: the provider's default (twilio 10 requests in flight per batch, acs 1, outbox 1).
    name: 'SMS_PROVIDER_CONCURRENCY'
    value: ''
  }
  {
    // Read by the sweep's timer trigger (function_app.py binds its schedule to it) as well as the app.
    name: 'SMS_SWEEP_SCHEDULE'
    value: '0 * * * * *'
  }
  {
    name: 'SMS_JSON_CASING'
    value: smsJsonCasing
  }
  // Twilio.
  {
    name: 'TWILIO_ACCOUNT_SID'
    value: twilioAccountSid
  }
  {
    name: 'TWILIO_AUTH_TOKEN'
    value: useTwilioAuthToken ? '@Microsoft.KeyVault(SecretUri=${vaultSecretsUri}/${secretNames.twilioAuthToken})' : ''
  }
  {
    name: 'TWILIO_API_KEY_SID'
    value: twilioApiKeySid
  }
  {
    name: 'TWILIO_API_KEY_SECRET'
    value: useTwilioApiKeySecret ? '@Microsoft.KeyVault(SecretUri=${vaultSecretsUri}/${secretNames.twilioApiKeySecret})' : ''
  }
  {
    name: 'TWILIO_MESSAGING_SERVICE_SID'
    value: twilioMessagingServiceSid
  }
  {
    name: 'TWILIO_STATUS_CALLBACK_URL'
    value: twilioStatusCallbackUrl
  }
  {
    name: 'TWILIO_BASE_URL'
    value: twilioBaseUrl
  }
  {
    name: 'TWILIO_TIMEOUT_SECONDS'
    value: twilioTimeoutSeconds
  }
  // Azure Communication Services: a connection string from the vault, or the endpoint + this app's identity.
  {
    name: 'ACS_CONNECTION_STRING'
    value: useAcsConnectionString ? '@Microsoft.KeyVault(SecretUri=${vaultSecretsUri}/${secretNames.acsConnectionString})' : ''
  }
  {
    name: 'ACS_ENDPOINT'
    value: acsEndpointValue
  }
  {
    name: 'ACS_CLIENT_ID'
    value: empty(acsEndpointValue) ? '' : identity.properties.clientId
  }
  {
    name: 'ACS_TIMEOUT_SECONDS'
    value: acsTimeoutSeconds
  }
]

// ---------------------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption without a virtual network reaches storage over its public endpoint; every request needs an Entra token (shared keys are disabled) and RBAC scopes what each identity can do.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public network access is required without a virtual network; no account key or SAS can authenticate.
  // checkov:skip=CKV_AZURE_206:Zone-redundant (Standard_ZRS) by default; geo-replication is the storageSku parameter (Standard_GZRS) for deployments that need a second region.
  // checkov:skip=CKV_AZURE_43:The name is 'st' + uniqueString(), 15 lowercase letters and digits; checkov cannot evaluate Bicep variables.
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: storageSku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

// ---------------------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------------------------------
// Key Vault (RBAC mode) and the provider secrets given as parameters
// ---------------------------------------------------------------------------------------------------------

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:The platform resolves the app's Key Vault references over the public endpoint (no virtual network); every request needs an Entra token authorised by RBAC.
  // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: public network access is required without a virtual network.
  // checkov:skip=CKV_AZURE_110:Purge protection is the keyVaultPurgeProtection parameter, on by default; checkov cannot evaluate the expression (the API accepts only true, so off means leaving the property out).
  // checkov:skip=CKV_AZURE_42:Soft delete is always on and purge protection follows keyVaultPurgeProtection (on by default); checkov cannot evaluate that expression.
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionDays
    // The API accepts only true here: leaving it out is how it stays off.
    enablePurgeProtection: keyVaultPurgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

module twilioAuthTokenInVault 'modules/vault-secret.bicep' = if (!empty(twilioAuthToken)) {
  name: 'secret-twilio-auth-token-${resourceToken}'
  params: {
    vaultName: keyVault.name
    secretName: secretNames.twilioAuthToken
    secretValue: twilioAuthToken
  }
}

module twilioApiKeySecretInVault 'modules/vault-secret.bicep' = if (!empty(twilioApiKeySecret)) {
  name: 'secret-twilio-api-key-secret-${resourceToken}'
  params: {
    vaultName: keyVault.name
    secretName: secretNames.twilioApiKeySecret
    secretValue: twilioApiKeySecret
  }
}

module acsConnectionStringInVault 'modules/vault-secret.bicep' = if (!empty(acsConnectionString)) {
  name: 'secret-acs-connection-string-${resourceToken}'
  params: {
    vaultName: keyVault.name
    secretName: secretNames.acsConnectionString
    secretValue: acsConnectionString
  }
}

// ---------------------------------------------------------------------------------------------------------
// Azure Communication Services (optional)
// ---------------------------------------------------------------------------------------------------------

resource communicationService 'Microsoft.Communication/communicationServices@2023-04-01' = if (createCommunicationService) {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: communicationServiceDataLocation
  }
}

// ---------------------------------------------------------------------------------------------------------
// Role assignments for the app's identity
// ---------------------------------------------------------------------------------------------------------

resource blobOwnerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisherAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsUserAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, identity.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource communicationContributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (createCommunicationService) {
  name: guid(resourceGroup().id, communicationServiceName, identity.id, roles.contributor)
  scope: communicationService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.contributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Role assignments for the deployer (optional): create API keys from a workstation, put secrets in the vault.

resource deployerTableAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(storage.id, deployerPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

resource deployerSecretsAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(keyVault.id, deployerPrincipalId, roles.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

// ---------------------------------------------------------------------------------------------------------
// Flex Consumption plan and function app
// ---------------------------------------------------------------------------------------------------------

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
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identity.id
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: appSettings
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}/${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
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
  // The app starts once its identity can reach what the settings point at, and the provider secrets exist.
  dependsOn: [
    deploymentContainer
    queues
    tables
    blobOwnerAssignment
    queueContributorAssignment
    tableContributorAssignment
    metricsPublisherAssignment
    secretsUserAssignment
    twilioAuthTokenInVault
    twilioApiKeySecretInVault
    acsConnectionStringInVault
  ]
}

// Deployments use Entra tokens (az, azd); publishing user names and passwords stay off.
resource ftpCredentialsPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentialsPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------------------------
// Custom domain (optional): bind the host name, then a managed certificate with SNI.
// ---------------------------------------------------------------------------------------------------------

resource customHostBinding 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = if (!empty(customDomain)) {
  parent: functionApp
  name: empty(customDomain) ? 'unused.invalid' : customDomain
  properties: {
    siteName: functionApp.name
    hostNameType: 'Verified'
    customHostNameDnsRecordType: 'CName'
    sslState: 'Disabled'
  }
}

resource managedCertificate 'Microsoft.Web/certificates@2024-04-01' = if (!empty(customDomain) && customDomainManagedCertificate) {
  name: 'cert-${appName}'
  location: location
  tags: tags
  properties: {
    serverFarmId: plan.id
    canonicalName: customDomain
  }
  dependsOn: [
    customHostBinding
  ]
}

module customHostTls 'modules/hostname-tls.bicep' = if (!empty(customDomain) && customDomainManagedCertificate) {
  name: 'custom-host-tls-${resourceToken}'
  params: {
    siteName: functionApp.name
    hostName: customDomain
    certificateThumbprint: managedCertificate.properties.thumbprint
  }
}

// ---------------------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment; infra/deploy.sh prints them)
// ---------------------------------------------------------------------------------------------------------

output ENDPOINT_URL string = empty(customDomain) ? 'https://${functionApp.properties.defaultHostName}' : 'https://${customDomain}'
output DEFAULT_HOST_URL string = 'https://${functionApp.properties.defaultHostName}'
output FUNCTION_APP_NAME string = functionApp.name
output RESOURCE_GROUP_NAME string = resourceGroup().name
output STORAGE_ACCOUNT_NAME string = storage.name
output KEY_VAULT_NAME string = keyVault.name
output SMS_PROVIDER string = smsProvider
output AZURE_LOCATION string = location
