"""On top of the stages: creating a workspace and the demo a newcomer sees."""
