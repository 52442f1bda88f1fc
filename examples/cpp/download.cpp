// examples/cpp/download.cpp: a BITS download job through the openbits C++ API (openbits.hpp), in
// the documented order, as examples/demo.c does in C:
//
//   open the manager -> create a job -> add the files -> resume
//   -> show progress until TRANSFERRED (or ERROR) -> complete
//
//   download BASE_URL DEST_DIR NAME...
//
// Each NAME is downloaded from BASE_URL/NAME to DEST_DIR/NAME (a query string in NAME, e.g.
// "a.bin?rate=100000", is left out of the local name). The manager keeps its state in
// DEST_DIR/.openbits-state. Build: see CMakeLists.txt here, or
//   c++ -std=c++17 download.cpp $(pkg-config --cflags --libs openbits)
#include <openbits.hpp>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <string>

using namespace std::chrono_literals;

static void show(openbits::JobState state, const openbits::Progress &p) {
    std::cout << std::left << std::setw(15) << openbits::to_string(state) << std::right << std::setw(10)
              << p.bytes_transferred << " / ";
    if (p.bytes_total) { // unknown until every file's size is known
        const double percent = *p.bytes_total ? 100.0 * double(p.bytes_transferred) / double(*p.bytes_total) : 100.0;
        std::cout << std::left << std::setw(10) << *p.bytes_total << std::right << " bytes " << std::fixed
                  << std::setprecision(1) << std::setw(5) << percent << "%";
    } else {
        std::cout << std::left << std::setw(10) << "?" << std::right << " bytes    --";
    }
    std::cout << "   files " << p.files_transferred << "/" << p.files_total << std::endl;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        std::cerr << "usage: " << argv[0] << " BASE_URL DEST_DIR NAME..." << std::endl;
        return 2;
    }
    const std::string base = argv[1];
    const std::filesystem::path dest_dir = std::filesystem::absolute(argv[2]); // the library wants absolute paths
    try {
        std::cout << "openbits " << openbits::version() << std::endl;

        // 1. The manager: a queue of jobs, persisted in a state folder, with its own threads.
        openbits::Manager manager((dest_dir / ".openbits-state").string());

        // 2. A download job. It starts SUSPENDED.
        openbits::Job job = manager.create_job("openbits C++ example");
        std::cout << "job " << job.id().to_string() << " created" << std::endl;

        // 3. Its files: remote URL -> absolute local path.
        for (int i = 3; i < argc; ++i) {
            const std::string name = argv[i];
            const std::string url = base + "/" + name;
            const std::string path = (dest_dir / name.substr(0, name.find_first_of("?#"))).string();
            job.add_file(url, path);
            std::cout << "  + " << url << " -> " << path << std::endl;
        }

        // 4. Resume: the job is queued and the manager's threads transfer it.
        job.resume();

        // 5. Wait for TRANSFERRED or ERROR (a transient error retries by itself), showing progress.
        const auto t0 = std::chrono::steady_clock::now();
        std::optional<openbits::JobState> ended;
        while (!(ended = job.wait_for(500ms)))
            show(job.state(), job.progress());
        show(*ended, job.progress());

        if (*ended != openbits::JobState::Transferred) {
            if (const auto error = job.error())
                std::cerr << "download: job failed: " << openbits::format_hresult(error->code) << " ("
                          << openbits::to_string(error->context) << "): " << error->description << std::endl;
            job.cancel(); // deletes the temporary files
            return 1;
        }
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
        std::cout << "transferred in " << std::fixed << std::setprecision(1) << took.count() << " s" << std::endl;

        // 6. Complete: the temporary BIT*.tmp files are flushed and renamed onto the destinations.
        if (const openbits::hresult hr = job.complete(); hr != BITS_S_OK) {
            std::cerr << "download: complete returned " << openbits::format_hresult(hr) << std::endl;
            return 1;
        }
        std::cout << "job " << job.id().to_string() << " " << openbits::to_string(job.state()) << std::endl;
        return 0;
    } catch (const openbits::Error &e) {
        // e.code() is the HRESULT, e.message() the library's sentence; what() has both.
        std::cerr << "download: " << e.what() << std::endl;
        return 1;
    }
}
