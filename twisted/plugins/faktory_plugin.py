from twisted.application.service import ServiceMaker

faktory = ServiceMaker(
    "Faktory server", "faktory.tap", "A Faktory-compatible background job server.", "faktory"
)
