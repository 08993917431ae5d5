// The gateway's subscription to its Communication Services events: SMS delivery reports and inbound SMS, pushed by
// Event Grid to the route POST /api/providers/acs/events?key=<SMS_EVENTGRID_KEY>.
//
// A deployment of its own, not part of main.bicep: Event Grid validates a WebHook endpoint when the subscription is
// created or its endpoint changes (it posts a SubscriptionValidationEvent and waits for the route's
// {"validationResponse": ...} answer: "Receive events from Azure Event Grid to an HTTP endpoint", Endpoint
// validation), so it can only be created once the code is deployed. infra/hooks/subscribe-acs-events.sh deploys it
// then (azd's postdeploy hook; infra/deploy.sh after publishing), into the resource group main.bicep deployed,
// with the outputs of that deployment and the key. Redeploying it is harmless: the same subscription is updated.
//
// Shapes from the ARM reference, Microsoft.EventGrid systemTopics/eventSubscriptions, API version 2025-02-15
// (Azure/bicep-types-az, generated/eventgrid/microsoft.eventgrid/2025-02-15/types.md): WebHook destination
// (endpointUrl is {sensitive}: it is never shown back, only endpointBaseUrl is), EventSubscriptionFilter
// includedEventTypes, RetryPolicy, DeadLetterWithResourceIdentity with a StorageBlob destination. Event types from
// "Azure Communication Services - SMS events" (MicrosoftDocs/azure-docs,
// articles/event-grid/communication-services-telephony-sms-events.md).

@description('The Communication Services system topic (main.bicep\'s output ACS_EVENTS_SYSTEM_TOPIC).')
param systemTopicName string

@description('The gateway\'s public base URL, https://<host> without a trailing slash (main.bicep\'s output SMS_PUBLIC_BASE_URL).')
param publicBaseUrl string

@secure()
@minLength(32)
@description('The key the route checks (SMS_EVENTGRID_KEY, the vault secret sms-eventgrid-key): at least 32 letters, digits, - or _.')
param eventGridKey string

@description('Storage account holding the dead-letter container (main.bicep\'s output STORAGE_ACCOUNT_NAME).')
param storageAccountName string

@description('Blob container for events Event Grid gives up on (main.bicep\'s output ACS_EVENTS_DEAD_LETTER_CONTAINER).')
param deadLetterContainerName string

// The route in gateway/routes.py (tests/infra/test_receipts_infra.py checks it is one of the app's POST routes).
var eventsPath = 'api/providers/acs/events'
// Both SMS event types, in one subscription: the route takes either.
var eventTypes = [
  'Microsoft.Communication.SMSDeliveryReportReceived'
  'Microsoft.Communication.SMSReceived'
]

resource systemTopic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: systemTopicName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: systemTopic
  name: 'sms-gateway'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: '${publicBaseUrl}/${eventsPath}?key=${eventGridKey}'
        minimumTlsVersionAllowed: '1.2'
      }
    }
    filter: {
      includedEventTypes: eventTypes
    }
    // Event Grid's own defaults, written out: 30 attempts over at most 24 hours, with back-off ("Event Grid message
    // delivery and retry"). The route answers 503 only for a storage outage, which is worth retrying; 400, 401, 403
    // and 413 are not retried and go straight to the dead-letter container.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    // Written with the topic's own identity (app/acs-events.bicep gives it Storage Blob Data Contributor on this
    // container): what was never delivered can still be read there, and replayed.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output name string = subscription.name
