async def run_kubelet(host, flags):
    import asyncio
    await asyncio.Event().wait()
