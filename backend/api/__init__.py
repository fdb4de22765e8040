"""The GraphQL API: Strawberry types and resolvers. No SQL here; resolvers call models."""
