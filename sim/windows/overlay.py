async def run_hybrid_overlay(host, flags):
    import asyncio
    await asyncio.Event().wait()
async def run_kube_proxy(host, flags):
    import asyncio
    await asyncio.Event().wait()
