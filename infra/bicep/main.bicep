// SMS gateway on Azure Functions Flex Consumption (Python 3.11), identity-only storage access.
//
// Deploys into an existing resource group (azd asks for one; infra/deploy.sh creates it). This file holds the
// parameters, the names and the gateway's app settings, and wires the modules in app/ the way Microsoft's Flex
// Consumption quickstart does (Azure-Samples/functions-quickstart-python-http-azd: infra/main.bicep + infra/app/):
//   app/identity.bicep       the app's user-assigned managed identity
//   app/storage.bicep        storage account: tables, queues, the deployment container (shared keys disabled)
//   app/monitoring.bicep     Log Analytics + Application Insights (Entra auth only)
//   app/keyvault.bicep       Key Vault (RBAC mode) and the provider secrets given as parameters
//   app/rbac.bicep           data-plane roles for the identity and, optionally, the deployer
//   app/communication.bicep  optional Communication Services resource and the identity's role on it
//   app/acs-events.bicep     with it, the Event Grid system topic of its SMS events (the subscription to the gateway's
//                            route is ../acs-events-subscription.bicep, deployed after the code: see that file)
//   app/function.bicep       Flex Consumption plan and function app, with the host's own app settings
//   app/frontdoor.bicep      optional Azure Front Door for a custom domain (Flex has no App Service certificates)
//   app/alerts.bicep         with alertEmail, alert rules on the gateway's metrics and the action group emailing it
//
// Every app setting the gateway reads is in the `appSettings` variable below (a list of name/value pairs, the shape
// siteConfig.appSettings takes); app/function.bicep adds the Functions host's own (`hostSettings`).
// tests/infra/test_infra.py checks both against the app's declared settings (gateway/settings.py and each
// provider's), this file's parameter defaults and bounds too; tests/infra/flex_rules.py fails on any property,
// setting or resource the Flex Consumption documentation says the plan rejects, citing the source of each rule.
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

// 40 to 1000, the official Flex Consumption samples' bounds (azure-functions-flex-consumption-samples,
// IaC/bicep/main.bicep). Microsoft's plan page ("Flex Consumption plan hosting", Considerations, "Scale") gave 40 as
// "the lowest maximum scale" through 2025 and now says 1; values under 40 have been reported refused where the
// platform lagged the page. 40 or more deploys either way; a lower ceiling can be set on the running app
// afterwards (docs/deploy.md, "Scale limits").
@minValue(40)
@maxValue(1000)
@description('Upper bound on instances per scale group (40 to 1000): bounds cost and the rate offered to the SMS provider.')
param maximumInstanceCount int = 100

@description('Spread the plan across availability zones. On Flex Consumption the platform then keeps at least two always-ready instances, billed even when idle, and the storage account must be zone-redundant (storageSku Standard_ZRS or Standard_GZRS).')
param zoneRedundant bool = false

// Standard_LRS by default because every Flex Consumption region offers it; ZRS and GZRS exist only in regions with
// availability zones ("Azure regions that support zone-redundant storage (ZRS)", Azure Storage docs), and Flex
// regions such as westus, northcentralus, westcentralus, ukwest, southindia and australiasoutheast have none.
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Storage redundancy: Standard_LRS (every region), Standard_GRS (a copy in the paired region), Standard_ZRS or Standard_GZRS (only in regions with availability zones; required by zoneRedundant).')
param storageSku string = 'Standard_LRS'

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

@description('Custom host name for the API, for example sms.example.com. Flex Consumption cannot hold a certificate for it, so the template puts Azure Front Door in front of the app with a certificate Front Door manages; after deploying, create the TXT and CNAME records the outputs name (docs/deploy.md).')
param customDomain string = ''

@allowed([
  'Standard_AzureFrontDoor'
  'Premium_AzureFrontDoor'
])
@description('Front Door tier used with customDomain.')
param frontDoorSku string = 'Standard_AzureFrontDoor'

@description('Email address the alerts go to (messages reaching the poison queue, failure rate, queue age); empty: no alert rules.')
param alertEmail string = ''

@minValue(1)
@maxValue(100)
@description('Failure-rate alert: more than this percent of at least 20 messages failed in 15 minutes.')
param alertFailureRatePercent int = 10

@minValue(1)
@maxValue(1440)
@description('Queue-age alert: a delivery message waited longer than this many minutes.')
param alertQueueAgeMinutes int = 15

// ---------------------------------------------------------------------------------------------------------
// Parameters: gateway settings (defaults equal the code's defaults in gateway/settings.py)
// ---------------------------------------------------------------------------------------------------------

@minLength(3)
@maxLength(56)
@description('Queue of accepted messages waiting for delivery; the template also creates <name>-poison.')
param smsQueueName string = 'sms-outbound'

@minLength(3)
@maxLength(56)
@description('Queue of webhook events waiting to be sent to the licensees; the template also creates <name>-poison.')
param smsWebhookQueueName string = 'sms-webhooks'

@minLength(1)
@maxLength(40)
@description('Prefix of the gateway tables: <prefix>Communications, <prefix>ApiKeys, <prefix>Outbox, <prefix>SenderPacing, <prefix>MessageIndex, <prefix>ReceiptChecks, <prefix>OptOuts, <prefix>Inbound, <prefix>ReplyIndex, <prefix>Webhooks, <prefix>WebhookEvents, <prefix>Schedule.')
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
@maxValue(255)
@description('Most segments (billed parts) one recipient\'s message may take.')
param smsMaxSegments int = 10

@description('Replace look-alike characters with their GSM-7 equivalents when nothing else needs UCS-2.')
param smsSmartEncoding bool = true

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

@description('Messages per second per sender number or sender id, across all instances (a number such as 1, 3 or 0.5); empty means no pacing. docs/delivery.md, Pacing.')
param smsSenderRatePerSecond string = ''

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

@description('Create a Communication Services resource and grant the app\'s identity Contributor on it, the narrowest role that lets it send SMS with Entra ID (app/communication.bicep says why); phone numbers are still bought in the portal.')
param createCommunicationService bool = false

@description('Where a created Communication Services resource keeps its data at rest.')
param communicationServiceDataLocation string = 'United States'

// ---------------------------------------------------------------------------------------------------------
// Parameters: delivery receipts (docs/providers.md, "Wiring delivery receipts")
// ---------------------------------------------------------------------------------------------------------

// Generated once and kept, never by the template: a newGuid() default would change at every deployment. azd's
// preprovision hook (infra/hooks/eventgrid-key.sh) keeps one in the azd environment; infra/deploy.sh makes one
// when the vault of the earlier deployment holds none. Set whatever the provider, so that ACS's reports for messages
// sent before a switch to another provider still arrive.
@secure()
@description('Key Event Grid must give in the query of /api/providers/acs/events: at least 32 letters, digits, - or _. When given, it is stored in Key Vault as sms-eventgrid-key.')
param eventGridKey string = ''

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
var frontDoorProfileName = 'afd-${resourceToken}'
var frontDoorEndpointName = 'api-${resourceToken}'
var acsEventsTopicName = 'evgt-acs-${resourceToken}'
var acsEventsDeadLetterContainerName = createCommunicationService ? 'acs-events-deadletter' : ''

// The gateway's storage: the names must match gateway/settings.py (Settings.queue_name, poison_queue_name,
// webhook_queue_name, webhook_poison_queue_name and every *_table property); tests/infra/test_infra.py checks it.
var queueNames = [
  smsQueueName
  '${smsQueueName}-poison'
  smsWebhookQueueName
  '${smsWebhookQueueName}-poison'
]
var tableNames = [
  '${smsTablePrefix}Communications'
  '${smsTablePrefix}ApiKeys'
  '${smsTablePrefix}Outbox'
  '${smsTablePrefix}SenderPacing'
  '${smsTablePrefix}MessageIndex'
  '${smsTablePrefix}ReceiptChecks'
  '${smsTablePrefix}OptOuts'
  '${smsTablePrefix}Inbound'
  '${smsTablePrefix}ReplyIndex'
  '${smsTablePrefix}Webhooks'
  '${smsTablePrefix}WebhookEvents'
  '${smsTablePrefix}Schedule'
  '${smsTablePrefix}MessageLog'
  '${smsTablePrefix}OpenWork'
]

// Provider secrets: a setting references its vault secret when the secret was given now or is listed as existing.
var secretNames = {
  twilioAuthToken: 'twilio-auth-token'
  twilioApiKeySecret: 'twilio-api-key-secret'
  acsConnectionString: 'acs-connection-string'
  eventGridKey: 'sms-eventgrid-key'
}
var useTwilioAuthToken = !empty(twilioAuthToken) || contains(existingSecretNames, secretNames.twilioAuthToken)
var useTwilioApiKeySecret = !empty(twilioApiKeySecret) || contains(existingSecretNames, secretNames.twilioApiKeySecret)
var useAcsConnectionString = !empty(acsConnectionString) || contains(existingSecretNames, secretNames.acsConnectionString)
var useEventGridKey = !empty(eventGridKey) || contains(existingSecretNames, secretNames.eventGridKey)
var vaultSecretsUri = 'https://${vaultName}${environment().suffixes.keyvaultDns}/secrets'
// The base of every URL the gateway gives a provider. Not the site's properties.defaultHostName: the app's own
// settings cannot read it (the site would depend on itself), and the settings are written when the site is
// created. Without properties.autoGeneratedDomainNameLabelScope, which app/function.bicep does not set (a test
// keeps it so), App Service gives an app the global default host name <name>.azurewebsites.net; the opt-in unique
// host names (<name>-<hash>.<region>.azurewebsites.net, "Secure unique default hostnames", GA for Functions in
// January 2026) are only given to apps created with that property. With a custom domain, Front Door's host.
var publicBaseUrl = empty(customDomain) ? 'https://${appName}.azurewebsites.net' : 'https://${customDomain}'
// The route Twilio posts status callbacks to (gateway/routes.py; tests/infra/test_receipts_infra.py checks it).
var twilioStatusPath = 'api/providers/twilio/status'
var twilioInboundPath = 'api/providers/twilio/inbound'
// The app takes a connection string or an endpoint, not both: a configured connection string wins.
var acsIdentityEndpoint = createCommunicationService ? communication.outputs.endpoint : acsEndpoint
var acsEndpointValue = useAcsConnectionString ? '' : acsIdentityEndpoint

// ---------------------------------------------------------------------------------------------------------
// App settings: the one list of every setting the gateway reads; app/function.bicep adds the host's own. Empty
// values mean "not configured" (the app treats an empty setting like a missing one).
// ---------------------------------------------------------------------------------------------------------

var appSettings = [
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
    name: 'SMS_MAX_SEGMENTS'
    value: string(smsMaxSegments)
  }
  {
    name: 'SMS_SMART_ENCODING'
    value: string(smsSmartEncoding)
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
    // Read by the missing-receipt check's timer trigger (function_app.py binds its schedule to it) as well as the app.
    name: 'SMS_RECEIPT_CHECK_SCHEDULE'
    value: '0 */5 * * * *'
  }
  {
    name: 'SMS_RECEIPT_CHECK_AFTER_MINUTES'
    value: '30'
  }
  {
    name: 'SMS_RECEIPT_GIVE_UP_HOURS'
    value: '72'
  }
  {
    name: 'SMS_REPLY_WINDOW_HOURS'
    value: '72'
  }
  {
    name: 'SMS_RETENTION_DAYS'
    value: '90'
  }
  {
    name: 'SMS_RETENTION_SCHEDULE'
    value: '0 */5 * * * *'
  }
  {
    name: 'SMS_RECEIPT_CHECKS_PER_RUN'
    value: '200'
  }
  {
    name: 'SMS_JSON_CASING'
    value: smsJsonCasing
  }
  {
    name: 'SMS_SENDER_RATE_PER_SECOND'
    value: smsSenderRatePerSecond
  }
  {
    name: 'SMS_PUBLIC_BASE_URL'
    value: publicBaseUrl
  }
  {
    // Webhook URLs resolving to private, loopback or link-local addresses are for local development only.
    name: 'SMS_WEBHOOK_ALLOW_PRIVATE'
    value: 'false'
  }
  {
    name: 'SMS_EVENTGRID_KEY'
    value: useEventGridKey ? '@Microsoft.KeyVault(SecretUri=${vaultSecretsUri}/${secretNames.eventGridKey})' : ''
  }
  {
    name: 'SMS_WEBHOOK_QUEUE_NAME'
    value: smsWebhookQueueName
  }
  {
    name: 'SMS_WEBHOOK_RETRY_BASE_SECONDS'
    value: '30'
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
    value: empty(acsEndpointValue) ? '' : identity.outputs.clientId
  }
  {
    name: 'ACS_TIMEOUT_SECONDS'
    value: acsTimeoutSeconds
  }
]

// ---------------------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------------------

module identity 'app/identity.bicep' = {
  name: 'identity-${resourceToken}'
  params: {
    name: identityName
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage-${resourceToken}'
  params: {
    name: storageAccountName
    location: location
    tags: tags
    sku: storageSku
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: acsEventsDeadLetterContainerName
    queueNames: queueNames
    tableNames: tableNames
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring-${resourceToken}'
  params: {
    logAnalyticsName: logAnalyticsName
    appInsightsName: appInsightsName
    location: location
    tags: tags
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault-${resourceToken}'
  params: {
    name: vaultName
    location: location
    tags: tags
    purgeProtection: keyVaultPurgeProtection
    softDeleteRetentionDays: keyVaultSoftDeleteRetentionDays
    secretNames: secretNames
    twilioAuthToken: twilioAuthToken
    twilioApiKeySecret: twilioApiKeySecret
    acsConnectionString: acsConnectionString
    eventGridKey: eventGridKey
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac-${resourceToken}'
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    identityId: identity.outputs.id
    principalId: identity.outputs.principalId
    deployerPrincipalId: deployerPrincipalId
    deployerPrincipalType: deployerPrincipalType
  }
}

module communication 'app/communication.bicep' = if (createCommunicationService) {
  name: 'communication-${resourceToken}'
  params: {
    name: communicationServiceName
    tags: tags
    dataLocation: communicationServiceDataLocation
    identityId: identity.outputs.id
    principalId: identity.outputs.principalId
  }
}

module acsEvents 'app/acs-events.bicep' = if (createCommunicationService) {
  name: 'acs-events-${resourceToken}'
  params: {
    name: acsEventsTopicName
    tags: tags
    communicationServiceName: communicationServiceName
    storageAccountName: storage.outputs.name
    deadLetterContainerName: acsEventsDeadLetterContainerName
  }
  // The resource's name is known beforehand; the resource itself must exist first.
  dependsOn: [
    communication
  ]
}

module functionApp 'app/function.bicep' = {
  name: 'function-${resourceToken}'
  params: {
    name: appName
    planName: planName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    appSettings: appSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
  }
  // The app starts once its identity can reach what the settings point at and the provider secrets exist.
  dependsOn: [
    rbac
    keyVault
  ]
}

module alerts 'app/alerts.bicep' = if (!empty(alertEmail)) {
  name: 'alerts-${resourceToken}'
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    location: location
    tags: tags
    namePrefix: 'sms-${resourceToken}'
    email: alertEmail
    failureRatePercent: alertFailureRatePercent
    queueAgeMinutes: alertQueueAgeMinutes
  }
}

module frontDoor 'app/frontdoor.bicep' = if (!empty(customDomain)) {
  name: 'frontdoor-${resourceToken}'
  params: {
    profileName: frontDoorProfileName
    endpointName: frontDoorEndpointName
    customDomain: customDomain
    originHostName: functionApp.outputs.defaultHostName
    sku: frontDoorSku
    tags: tags
  }
}

// ---------------------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment; infra/deploy.sh prints them)
// ---------------------------------------------------------------------------------------------------------

output ENDPOINT_URL string = empty(customDomain) ? 'https://${functionApp.outputs.defaultHostName}' : 'https://${customDomain}'
output DEFAULT_HOST_URL string = 'https://${functionApp.outputs.defaultHostName}'
output FUNCTION_APP_NAME string = functionApp.outputs.name
output RESOURCE_GROUP_NAME string = resourceGroup().name
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output KEY_VAULT_NAME string = keyVault.outputs.name
output SMS_PROVIDER string = smsProvider
output AZURE_LOCATION string = location
// With customDomain: the DNS records to create (docs/deploy.md, "Custom domain"); empty otherwise.
output CUSTOM_DOMAIN_CNAME_TARGET string = empty(customDomain) ? '' : frontDoor.outputs.endpointHostName
output CUSTOM_DOMAIN_TXT_NAME string = empty(customDomain) ? '' : frontDoor.outputs.validationRecordName
output CUSTOM_DOMAIN_TXT_VALUE string = empty(customDomain) ? '' : frontDoor.outputs.validationToken
// Delivery receipts (docs/providers.md, "Wiring delivery receipts"). The URL to paste into a Twilio Messaging
// Service's status callback; the gateway gives it with every message itself. Not named TWILIO_STATUS_CALLBACK_URL:
// azd keeps outputs in its environment, and main.parameters.json reads that name into twilioStatusCallbackUrl.
output SMS_PUBLIC_BASE_URL string = publicBaseUrl
output TWILIO_MESSAGING_SERVICE_CALLBACK_URL string = '${publicBaseUrl}/${twilioStatusPath}'
// Replies and STOP (docs/replies.md): the URL to set as a Twilio number's (or Messaging Service's) incoming webhook.
output TWILIO_INBOUND_URL string = '${publicBaseUrl}/${twilioInboundPath}'
// What infra/hooks/subscribe-acs-events.sh needs after the code is deployed; empty without a created ACS resource.
output ACS_EVENTS_SYSTEM_TOPIC string = createCommunicationService ? acsEvents.outputs.name : ''
output ACS_EVENTS_DEAD_LETTER_CONTAINER string = acsEventsDeadLetterContainerName
output SMS_EVENTGRID_KEY_IN_VAULT bool = useEventGridKey
