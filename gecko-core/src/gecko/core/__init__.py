"""Layer 3: the agent engine, toolbox, structured output, prompts, events and memory."""
