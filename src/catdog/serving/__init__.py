"""Using a logged model: promote the best run's model to the registry (`promote`), classify
images with it (`predict`) and score it on any labelled folder (`evaluate`)."""
