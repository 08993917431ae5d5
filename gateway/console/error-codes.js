// Provider error codes in words, for the journey's recipients (td.error span.explained).
//
// Paraphrased from the providers' own pages, not copied:
//   Twilio: https://www.twilio.com/docs/api/errors (one page per code, e.g. /docs/api/errors/30003,
//     /30001, /30002, /30010, /21608), and Twilio's Messaging status callback docs.
//   Azure Communication Services: delivery reports (AcsSmsDeliveryReportReceivedEventData, deliveryStatus
//     "Delivered" or "Failed" with deliveryStatusDetails:
//     https://learn.microsoft.com/en-us/javascript/api/@azure/eventgrid-system-events/acssmsdeliveryreportreceivedeventdata),
//     the SMS FAQ (https://learn.microsoft.com/en-us/azure/communication-services/concepts/sms/sms-faq) and the
//     REST API's common error codes (https://learn.microsoft.com/en-us/rest/api/communication/errorcodes): a send
//     ACS refuses is recorded with its HTTP status as the code.
//   The gateway's own codes (Timeout, ConnectionLost, NoResult): gateway/providers/common.py and acs.py.

const TWILIO = {
  "21211": "The number is not a valid phone number for the destination country.",
  "21408": "The account is not allowed to send to this country or region (its geographic permissions exclude it).",
  "21608": "A trial account can only send to numbers verified with Twilio.",
  "21610": "The recipient texted STOP to this sender; Twilio refuses every message to them until they text START.",
  "21612": "Twilio cannot route a message from this sender to this number (the pair is not supported).",
  "21614": "The number is not a mobile number able to receive SMS (a landline, for example).",
  "30001": "Twilio's queue for this sender overflowed: too many messages too fast, and it waited too long to send.",
  "30002": "The Twilio account was suspended after the message was queued and before it was sent.",
  "30003": "The phone could not be reached: switched off, out of coverage, roaming, or unable to take SMS.",
  "30004": "The message was blocked: the recipient or their carrier blocks messages from this sender.",
  "30005": "The number is unknown to the carrier: it may no longer exist or be in service.",
  "30006": "A landline, or the recipient's carrier could not be reached.",
  "30007": "The carrier or Twilio filtered the message as possible spam, fraud or abuse.",
  "30008": "The carrier reported an unknown error; it may be temporary.",
  "30010": "The message cost more than the maximum price the request allowed.",
  "30032": "The sender is a toll-free number that is not verified, so carriers refuse its messages.",
  "30034": "The sender is a US 10DLC number not registered for A2P messaging, so carriers refuse its messages.",
};

const ACS = {
  "Delivered": "The carrier reported the message delivered to the phone.",
  "Failed": "The carrier reported the message could not be delivered; the provider's details say why.",
  "400": "Azure Communication Services refused the request as malformed (a number or sender it does not accept).",
  "401": "Azure Communication Services could not authenticate the gateway (check its connection string).",
  "403": "Azure Communication Services refused: the sender may not send to this destination.",
  "404": "Azure Communication Services does not know the sender or resource.",
  "429": "Azure Communication Services throttled the send: too many requests; the gateway retries.",
  "500": "Azure Communication Services had an internal error.",
};

const GATEWAY = {
  "Timeout": "The provider did not answer in time; it may still have the message.",
  "ConnectionLost": "The connection broke after the message went out; the provider may still have it.",
  "NoResult": "The provider's answer did not include this recipient.",
};

/** What an error code means, in words; empty when the code is not one we can explain. */
export function explain(code) {
  if (!code) return "";
  const key = String(code).trim();
  return TWILIO[key] ?? GATEWAY[key] ?? ACS[key] ?? (/^5\d\d$/.test(key) ? ACS["500"] : "");
}
