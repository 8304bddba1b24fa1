"""Generated from proto/agent.proto by sdk/python/generate.sh; do not edit."""
