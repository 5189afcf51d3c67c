"""The Gradio chat page over the rag library."""
