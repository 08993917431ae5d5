// The Event Grid system topic of the Communication Services resource, through which ACS publishes its SMS events
// (delivery reports, inbound messages), and the role that lets the topic dead-letter what it cannot deliver.
//
// The topic only: the gateway's webhook subscription is not created here. Creating a WebHook subscription makes
// Event Grid send a SubscriptionValidationEvent to the endpoint and wait for the answer ("Receive events from Azure
// Event Grid to an HTTP endpoint", Endpoint validation), and on a first deployment the template runs before the
// code exists, so the handshake, and the whole deployment with it, would fail. infra/hooks/subscribe-acs-events.sh
// deploys ../acs-events-subscription.bicep once the code answers (azd's postdeploy hook; infra/deploy.sh after
// publishing); tests/infra/test_receipts_infra.py keeps the subscription out of main.bicep's deployment.
//
// Shapes from the ARM reference, Microsoft.EventGrid systemTopics and systemTopics/eventSubscriptions, API version
// 2025-02-15 (the newest non-preview one in Azure/bicep-types-az, generated/eventgrid/microsoft.eventgrid/2025-02-15):
//  - topicType 'Microsoft.Communication.CommunicationServices' ("Azure Communication Services as an Azure Event
//    Grid source"); a system topic lives where its source does, and a Communication Services resource is
//    'global' (communication.bicep), so the topic is 'global' too.
//  - A system-assigned identity, used only to write undeliverable events to a blob container
//    (deadLetterWithResourceIdentity); the role it needs on Blob storage is Storage Blob Data Contributor ("Add
//    managed identity to a role on Azure Event Grid destination", MicrosoftDocs/azure-docs
//    articles/event-grid/add-identity-roles.md). The account refuses shared keys, so Event Grid's own
//    key-based dead-lettering would not work.

@description('System topic name.')
param name string

@description('Tags for the topic.')
param tags object

@description('Name of the Communication Services resource whose events the topic publishes.')
param communicationServiceName string

@description('Storage account holding the dead-letter container.')
param storageAccountName string

@description('Blob container undeliverable events are written to.')
param deadLetterContainerName string

// Built-in role: Storage Blob Data Contributor.
var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource communicationService 'Microsoft.Communication/communicationServices@2023-04-01' existing = {
  name: communicationServiceName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' = {
  name: name
  location: 'global'
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: communicationService.id
    topicType: 'Microsoft.Communication.CommunicationServices'
  }
}

// Scoped to the one container: the topic can write dead letters and nothing else in the account.
resource deadLetterAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, systemTopic.id, storageBlobDataContributorRoleId)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = systemTopic.name
