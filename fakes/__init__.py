"""Local stand-ins for the SMS providers' services, speaking their real wire protocols over real sockets.

``python -m fakes.twilio`` and ``python -m fakes.acs`` run one from a shell (docs/providers.md); the
tests and benchmarks start them in-process or as a child. Development only: not in the deployment package.
"""
