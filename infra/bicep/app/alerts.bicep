// Alert rules on the gateway's own metrics (gateway/telemetry.py; docs/observability.md), emailed through one
// action group: messages reaching the poison queue, the failure rate, and the delivery queue's age.
//
// Log search alerts (Microsoft.Insights/scheduledQueryRules, GA API 2023-12-01) over the Application Insights
// resource, whose `customMetrics` table holds what the gateway exports with azure-monitor-opentelemetry: counters
// and histograms land there with their attributes in customDimensions. A metric alert (metricAlerts) could not
// split `sms.messages` by its `sms.outcome` dimension without the resource's "custom metric dimensions" opt-in.
// The platform's limits tests/infra/test_alerts.py checks: an action group's groupShortName has at most 12
// characters and its location is 'global'; a log alert's windowSize is at least its evaluationFrequency, both one
// of the durations the API takes; severity is 0 to 4; a Count aggregation names no metricMeasureColumn.

@description('Application Insights resource the app sends its metrics to.')
param appInsightsName string

@description('Region of the alert rules (the action group is global).')
param location string

@description('Tags for every resource here.')
param tags object

@description('Name prefix of the action group and the alert rules.')
param namePrefix string

@minLength(3)
@description('Email address the alerts are sent to.')
param email string

@minValue(1)
@maxValue(100)
@description('Alert when more than this percent of the messages handed to the provider in 15 minutes failed.')
param failureRatePercent int

@minValue(1)
@maxValue(1440)
@description('Alert when a delivery message waited longer than this many minutes before a run took it.')
param queueAgeMinutes int

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-operators'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'sms-gateway'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: email
        useCommonAlertSchema: true
      }
    ]
  }
}

// Each query returns a row only when the condition holds; the rule fires when it returns any (Count > 0).
var poisonQuery = 'customMetrics | where name == "sms.messages" and tostring(customDimensions["sms.outcome"]) == "abandoned" | summarize abandoned = sum(valueSum) | where abandoned > 0'
var failureQuery = 'customMetrics | where name == "sms.messages" | extend outcome = tostring(customDimensions["sms.outcome"]) | summarize failed = sumif(valueSum, outcome in ("failed", "undelivered")), sent = sumif(valueSum, outcome == "sent") | where sent + failed >= 20 and 100.0 * failed / (sent + failed) > ${failureRatePercent}'
var queueAgeQuery = 'customMetrics | where name in ("sms.queue.age", "sms.queue.waiting") | summarize oldest = max(valueMax) | where oldest > ${queueAgeMinutes * 60}'

resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-poison-queue'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'SMS gateway: messages reached the poison queue'
    description: 'Delivery messages that used every attempt (SMS_MAX_DELIVERY_ATTEMPTS) reached the poison queue, whose function ended their recipients Failed (the sms.messages metric, outcome abandoned).'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: poisonQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource failureRateAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-failure-rate'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'SMS gateway: failure rate'
    description: 'More than ${failureRatePercent}% of at least 20 messages failed (refused by the provider, or undelivered by its receipts) in 15 minutes.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: failureQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource queueAgeAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-queue-age'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'SMS gateway: delivery queue age'
    description: 'A delivery message waited more than ${queueAgeMinutes} minutes: at processing (sms.queue.age), or at the head of the queue when the sweep looked (sms.queue.waiting).'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: queueAgeQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

output actionGroupName string = actionGroup.name
