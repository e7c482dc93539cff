"""Running the model fast: forward engines (eager, ``torch.compile``, ONNX Runtime), the
allocator tuning and the chunk sizes chosen by measurement.

:class:`~absgrad.inference.engine.Engine` wraps a model into the no-grad forward callable the
metrics use; :mod:`~absgrad.inference.ort` is its ONNX Runtime back end;
:func:`~absgrad.inference.allocator.tune_allocator` keeps large buffers mapped;
:func:`~absgrad.inference.chunk_sizes.auto_eval_batch_size` measures the forward chunk size.
"""
