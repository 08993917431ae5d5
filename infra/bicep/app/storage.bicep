// The storage account the host and the gateway share: the gateway's tables and queues, and the container Flex
// Consumption deploys the app package from. Shared keys are off: every request carries an Entra token.

@description('Storage account name (3 to 24 lowercase letters and digits).')
param name string

@description('Region of the account.')
param location string

@description('Tags for the account.')
param tags object

// Zone- and geo-zone-redundant SKUs exist only in regions with availability zones ("Azure regions that support
// zone-redundant storage (ZRS)" and "... geo-zone-redundant storage (GZRS)" in the Azure Storage docs), and several
// Flex Consumption regions have none; main.bicep defaults to Standard_LRS, which every region offers.
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('Redundancy SKU.')
param sku string

@description('Blob container Flex Consumption deploys the app package from.')
param deploymentContainerName string

@description('Blob container Event Grid writes the ACS events it could not deliver to; empty creates none.')
param deadLetterContainerName string

@description('Queues to create: the delivery queue, the webhook queue and their poison queues.')
param queueNames array

@description('Tables to create: main.bicep\'s tableNames.')
param tableNames array

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:Flex Consumption without a virtual network reaches storage over its public endpoint; every request needs an Entra token (shared keys are disabled) and RBAC scopes what each identity can do.
  // checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: public network access is required without a virtual network; no account key or SAS can authenticate.
  // checkov:skip=CKV_AZURE_206:Replication is the storageSku parameter: Standard_LRS by default because zone-redundant SKUs do not exist in every Flex Consumption region; Standard_ZRS or Standard_GZRS where the region has availability zones.
  // checkov:skip=CKV_AZURE_43:The name is 'st' + uniqueString(), 15 lowercase letters and digits; checkov cannot evaluate Bicep variables.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: sku
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

// Read with az storage blob list/download (docs/providers.md, "Wiring delivery receipts"); written only by the ACS
// events topic's identity (app/acs-events.bicep).
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!empty(deadLetterContainerName)) {
  parent: blobService
  name: deadLetterContainerName
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

// Read by the modules that depend on the account (roles, the function app), so they wait for it and its contents.
output name string = storage.name
